//! FastCGI front door. (in progress)
