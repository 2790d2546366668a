//! The `remo` client. (in progress)

/// Entry point of the `remo` binary; returns the exit code.
pub fn remo_main() -> i32 {
    eprintln!("remo: not implemented yet");
    2
}
