//! `remod`: the remo server and its admin tools.

fn main() {
    remo::alloc::tune();
    std::process::exit(remo::remod_cli::remod_main());
}
