//! `remo`: the remo client.

fn main() {
    remo::alloc::tune();
    std::process::exit(remo::client::remo_main());
}
