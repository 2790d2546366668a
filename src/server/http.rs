//! Embedded HTTP/1.1 front door. (in progress)
