//! `remo`: the remo client.

fn main() {
    remo::malloc::tune();
    std::process::exit(remo::client::remo_main());
}
