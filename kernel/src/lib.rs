//! kbpf: the BPF subsystem of a kernel, as a `no_std` + `alloc` crate.
//!
//! A kernel-style host links this crate, registers its [`host::Host`] (CPUs, executable memory,
//! time, randomness) and optionally a JIT, then drives everything through the [`syscall`] facade
//! — the shape of `bpf(2)`. The rooms mirror `kernel/bpf/` in Linux; `docs/ARCHITECTURE.md` is
//! the map.
//!
//! Fast path (running a program, a tail call) takes no lock and allocates nothing; it runs inside
//! an RCU read-side section on a CPU the thread holds. Control path (load, update, close) locks,
//! may allocate, and fails without side effects.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(any(test, loom))]
extern crate std;

pub mod blind;
pub mod cpu;
pub mod errno;
pub mod helpers;
pub mod host;
pub mod id;
pub mod insn;
pub mod interp;
pub mod jit;
pub mod kfunc;
pub mod link;
pub mod load;
pub mod map;
pub mod maps;
pub mod mprog;
pub mod patch;
pub mod prog;
pub mod skb;
pub mod sync;
pub mod syscall;
pub mod tcx;
pub mod test_run;
pub mod uapi;
pub mod verifier;
pub mod xdp;

pub use errno::{Errno, Result};
pub use link::{Link, LinkOps};
pub use map::{Map, MapAttr};
pub use prog::Prog;
pub use prog::ProgLoadAttr;
