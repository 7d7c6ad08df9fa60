//! kbpf-shim: the user-mode host for kbpf, and the pieces of the `kbpf` CLI.

pub mod data;
pub mod host;
