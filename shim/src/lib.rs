//! kbpf-shim: the user-mode host for kbpf, and the pieces of the `kbpf` CLI.
//!
//! Everything the CLI does is a function here, so tests drive exactly what users run.

pub mod bench;
pub mod bench_patch;
pub mod cli;
pub mod conformance;
pub mod ct;
pub mod data;
pub mod demo;
pub mod dump;
pub mod elf;
pub mod elf_host;
pub mod host;
pub mod host_bpf;
pub mod host_mprog;
pub mod mprog_script;
pub mod progs;
pub mod tcx_script;
pub mod verify_cmd;
