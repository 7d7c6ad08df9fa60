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
//!
//! # Embedding
//! 1. Implement [`host::Host`] (see its docs for a minimal one) and [`host::register`] it once,
//!    before anything else.
//! 2. Optionally register a JIT with [`jit::register`] (`kbpf_jit::X86_JIT` on x86-64); without
//!    one, programs run in the interpreter.
//! 3. Create maps and load programs through [`syscall`] ([`syscall::prog_load`] verifies), and
//!    run them with [`syscall::prog_test_run`] — or attach them ([`tcx`]) and run them on a
//!    [`cpu::CpuGuard`].
//!
//! ```
//! # use kbpf::host::{ExecRegion, Host};
//! # use kbpf::sync::cpu::{CpuSlots, Hold};
//! # use kbpf::{Errno, Result};
//! # struct MyHost { cpus: CpuSlots, start: std::time::Instant }
//! # std::thread_local! { static HOLD: Hold = const { Hold::new() }; }
//! # impl Host for MyHost {
//! #     fn nr_cpus(&self) -> usize { self.cpus.nr() }
//! #     fn cpu_enter(&self) -> usize { HOLD.with(|h| self.cpus.enter(h, 0)) }
//! #     fn cpu_exit(&self, cpu: usize) { HOLD.with(|h| self.cpus.exit(h, cpu)) }
//! #     fn ktime_ns(&self) -> u64 { self.start.elapsed().as_nanos() as u64 }
//! #     fn random_u32(&self) -> u32 { self.start.elapsed().subsec_nanos() }
//! #     fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> { Err(Errno::ENOMEM) }
//! #     fn exec_seal(&self, _region: &ExecRegion) -> Result { Err(Errno::EINVAL) }
//! #     fn text_poke(&self, _r: &ExecRegion, _o: usize, _b: &[u8]) -> Result { Err(Errno::EINVAL) }
//! #     fn exec_free(&self, _region: ExecRegion) {}
//! # }
//! # let host = MyHost { cpus: CpuSlots::new(2), start: std::time::Instant::now() };
//! # kbpf::host::register(Box::leak(Box::new(host)));
//! use kbpf::insn::{exit, mov64_imm};
//! use kbpf::syscall::{self, TestRun};
//! use kbpf::uapi::ProgType;
//! use kbpf::ProgLoadAttr;
//!
//! // r0 = 42; exit
//! let insns = [mov64_imm(0, 42), exit()];
//! let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns))?;
//! let run = syscall::prog_test_run(fd, &mut TestRun { repeat: 1, ..Default::default() })?;
//! assert_eq!(run.retval, 42);
//! syscall::close(fd)?;
//! # Ok::<(), kbpf::Errno>(())
//! ```
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
pub mod net;
pub mod netfilter;
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
