//! The `kbpf` command line.
fn main() {}
