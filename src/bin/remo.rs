//! `remo`: the remo client.

fn main() {
    std::process::exit(remo::client::remo_main());
}
