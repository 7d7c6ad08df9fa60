//! Helpers the tail-call case sets share (`jit_tailcall_cases/`, `jit_tailcall_direct_cases/`):
//! loading raw-buffer programs written in the conformance assembly, where `{mN}` stands for the
//! N-th map, on a 24-byte context — a body counter at 0, an input at 8, a second counter at 16.
//! Each test binary includes it through one case set and uses part of it.
#![allow(dead_code)]

use kbpf::insn::assemble;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::Engine;

/// The context every case runs on (the verifier checks accesses against it).
pub const CTX_LEN: usize = 24;

/// Bump the counter at 0.
pub const BUMP: &str = "ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\n";

/// Installs the host and selects `engine` (process-wide).
pub fn setup(engine: Engine) {
    kbpf_shim::host::install();
    engine.select();
}

/// `src` with `{mN}` replaced by `maps[N]`.
pub fn subst(src: &str, maps: &[Fd]) -> String {
    let mut text = src.to_string();
    for (i, m) in maps.iter().enumerate() {
        text = text.replace(&format!("{{m{i}}}"), &format!("map_fd {m}"));
    }
    text
}

/// The load attributes of a case program: raw buffer, verified for [`CTX_LEN`].
pub fn attr(insns: &[kbpf::insn::Insn]) -> ProgLoadAttr<'_> {
    ProgLoadAttr::new(ProgType::RawBuffer, insns).with_ctx_size(CTX_LEN as u32)
}

/// Loads `src` through the verifier, or with `trusted` on the trusted path
/// (`prog_load_trusted`, like the kernel's `lib/test_bpf.c`), and asserts it runs on `engine`.
pub fn load(engine: Engine, src: &str, maps: &[Fd], trusted: bool) -> Fd {
    let text = subst(src, maps);
    let insns = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut log = String::new();
    let fd = if trusted {
        syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &insns))
    } else {
        syscall::prog_load_log(&attr(&insns), &mut log)
    };
    let fd = fd.unwrap_or_else(|e| panic!("load: {e:?}: {log}\n{text}"));
    assert_eq!(
        syscall::prog_get(fd).unwrap().jited(),
        engine == Engine::Jit,
        "engine of\n{text}"
    );
    fd
}

/// The verifier's errno and log for `src`, which it must reject.
pub fn verifier_rejects(src: &str, maps: &[Fd]) -> (kbpf::Errno, String) {
    let insns = assemble(&subst(src, maps)).expect("assemble");
    let mut log = String::new();
    let e = syscall::prog_load_log(&attr(&insns), &mut log).expect_err("the verifier accepted it");
    (e, log)
}

/// A prog_array of `slots` entries.
pub fn prog_array(slots: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, slots)).expect("map")
}

/// Stores `prog` in `map[key]`.
pub fn set(map: Fd, key: u32, prog: Fd) {
    syscall::map_update_elem(map, &key.to_ne_bytes(), &prog.to_ne_bytes(), 0).expect("update");
}

/// Empties `map[key]`.
pub fn del(map: Fd, key: u32) {
    syscall::map_delete_elem(map, &key.to_ne_bytes()).expect("delete");
}

/// Runs `fd` with input `input` at ctx+8; returns (R0, counter at 0, counter at 16).
pub fn run_with(fd: Fd, input: u64) -> (u64, u64, u64) {
    let mut ctx = [0u8; CTX_LEN];
    ctx[8..16].copy_from_slice(&input.to_ne_bytes());
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .expect("run");
    let at = |o: usize| u64::from_ne_bytes(ctx[o..o + 8].try_into().unwrap());
    (r.retval, at(0), at(16))
}

/// (R0, counter at 0).
pub fn run(fd: Fd) -> (u64, u64) {
    let (r0, c, _) = run_with(fd, 0);
    (r0, c)
}
