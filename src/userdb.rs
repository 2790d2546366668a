//! The SQLite user database. (in progress)
