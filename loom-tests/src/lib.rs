//! Loom models of kbpf (run with RUSTFLAGS="--cfg loom").
