//! Shared setup for the kbpf benchmarks.
