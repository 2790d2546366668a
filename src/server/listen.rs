//! Listening sockets. (in progress)
