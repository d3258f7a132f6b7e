//! `flotilla-fleet`: the local test fleet (see fleet/README.md once written).
fn main() {
    eprintln!("flotilla-fleet: not built yet");
    std::process::exit(2);
}
