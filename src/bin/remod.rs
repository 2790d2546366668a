//! `remod`: the remo server and its admin tools.

fn main() {
    std::process::exit(remo::remod_cli::remod_main());
}
