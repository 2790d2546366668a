//! Writes the seed inputs of every fuzz target (`remo::fuzz::seeds`) into
//! `DIR/TARGET/seed-N`: `fuzz/run` calls it before fuzzing.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds DIR");
        return ExitCode::from(2);
    };
    let mut n = std::collections::HashMap::<&str, usize>::new();
    for (target, input) in remo::fuzz::seeds() {
        let k = n.entry(target).or_insert(0);
        *k += 1;
        let d = dir.join(target);
        let written = std::fs::create_dir_all(&d)
            .and_then(|()| std::fs::write(d.join(format!("seed-{k}")), &input));
        if let Err(e) = written {
            eprintln!("fuzz-seeds: {}: {e}", d.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
