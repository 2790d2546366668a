//! PEM key files. (in progress)
