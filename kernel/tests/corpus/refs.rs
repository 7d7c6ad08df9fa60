//! The reference-tracking corpus: sockets from helpers and socket maps, kernel objects from
//! kfuncs, per-type helper availability, memory + size arguments. Each negative case carries
//! the kernel's errno and a log fragment; the positive controls pass the same rules. Read by
//! `kernel/tests/verifier_refs.rs` and by the host-kernel differential
//! (`shim/tests/verifier_host.rs`; the kfunc cases, `call kfunc`, use kbpf's own kfunc ids and
//! are not sent to the host). Map handles are the corpus's ([`super::maps`]).

#![allow(unused_macros)]

use kbpf::Errno;
use kbpf::uapi::ProgType;

/// How a case is verified: the program type and privilege mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// TC classifier.
    Tc,
    /// TC classifier, root's rules.
    TcPriv,
    /// XDP.
    Xdp,
    /// XDP, root's rules (kernel objects may be read only with `CAP_PERFMON`).
    XdpPriv,
    /// Socket filter.
    Skb,
    /// sk_lookup.
    SkLookup,
    /// cgroup skb.
    CgroupSkb,
}

impl Mode {
    /// The program type the case is verified as.
    pub fn prog_type(self) -> ProgType {
        match self {
            Mode::Tc | Mode::TcPriv => ProgType::SchedCls,
            Mode::Xdp | Mode::XdpPriv => ProgType::Xdp,
            Mode::Skb => ProgType::SocketFilter,
            Mode::SkLookup => ProgType::SkLookup,
            Mode::CgroupSkb => ProgType::CgroupSkb,
        }
    }

    /// Verified with root's rules.
    pub fn privileged(self) -> bool {
        matches!(self, Mode::TcPriv | Mode::XdpPriv)
    }
}

/// Zeroes the 40 bytes at fp-40 (a `struct bpf_sock_tuple` lives at fp-40).
#[macro_export]
macro_rules! tuple {
    () => {
        "stdw [%r10-8], 0\nstdw [%r10-16], 0\nstdw [%r10-24], 0\nstdw [%r10-32], 0\nstdw [%r10-40], 0\n"
    };
}

/// `r0 = bpf_sk_lookup_tcp(ctx, fp-40, 36, 0, 0)`; r1 must hold the context. The call is
/// instruction 10.
#[macro_export]
macro_rules! sk_lookup {
    () => {
        concat!(
            tuple!(),
            "mov %r2, %r10\nadd %r2, -40\nmov %r3, 36\nmov %r4, 0\nmov %r5, 0\ncall 84\n"
        )
    };
}

/// Tuple at fp-40, opts (16 bytes) at fp-56, both zeroed; then the conntrack lookup
/// arguments R2..R5 (R1 must hold the context).
#[macro_export]
macro_rules! ct_args {
    () => {
        concat!(
            tuple!(),
            "stdw [%r10-48], 0\nstdw [%r10-56], 0\n",
            "mov %r2, %r10\nadd %r2, -40\nmov %r3, 36\nmov %r4, %r10\nadd %r4, -56\nmov %r5, 16\n"
        )
    };
}

/// `r0 = bpf_xdp_ct_lookup(ctx, fp-40, 36, fp-56, 16)`: call at instruction 13.
#[macro_export]
macro_rules! xdp_ct {
    () => {
        concat!(ct_args!(), "call kfunc 100001\n")
    };
}

/// `r0 = bpf_skb_ct_lookup(ctx, fp-40, 36, fp-56, 16)`.
#[macro_export]
macro_rules! skb_ct {
    () => {
        concat!(ct_args!(), "call kfunc 100002\n")
    };
}

/// (name, mode, program, errno, log fragment).
pub const NEGATIVE: &[(&str, Mode, &str, Errno, &str)] = &[
    // --- leaks
    (
        "leak at exit",
        Mode::Tc,
        concat!(sk_lookup!(), "mov %r0, 0\nexit"),
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=10",
    ),
    (
        "leak after the null check",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r0, 1\nexit\nout: mov %r0, 0\nexit"
        ),
        Errno::EINVAL,
        "Unreleased reference",
    ),
    (
        "leak on one branch only",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "mov %r6, %r0\njeq %r6, 0, out\nldxw %r2, [%r6+4]\njeq %r2, 2, out\n",
            "mov %r1, %r6\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EINVAL,
        "Unreleased reference",
    ),
    (
        "leak acquired in a subprogram",
        Mode::Tc,
        concat!(
            "call local sub\nmov %r0, 0\nexit\nsub:\n",
            sk_lookup!(),
            "mov %r0, 0\nexit"
        ),
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=13",
    ),
    (
        "kfunc leak",
        Mode::Xdp,
        concat!(xdp_ct!(), "mov %r0, 2\nexit"),
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=13",
    ),
    (
        "tail call with a held reference",
        Mode::Tc,
        concat!(
            "mov %r6, %r1\n",
            sk_lookup!(),
            "mov %r7, %r0\nmov %r1, %r6\nlddw %r2, map_fd 2\nmov %r3, 0\ncall 12\n",
            "jeq %r7, 0, out\nmov %r1, %r7\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EINVAL,
        "tail_call would lead to reference leak",
    ),
    // --- release
    (
        "double release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r6\ncall 86\nmov %r1, %r6\ncall 86\n",
            "out: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "15: R6 !read_ok",
    ),
    (
        "use after release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r0\ncall 86\nldxw %r0, [%r6+0]\nexit\n",
            "out: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R6 !read_ok",
    ),
    (
        "use after release, privileged",
        Mode::TcPriv,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r0\ncall 86\nldxw %r0, [%r6+0]\nexit\n",
            "out: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R6 invalid mem access 'scalar'",
    ),
    (
        "use of a spilled copy after release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nstxdw [%r10-48], %r0\nmov %r1, %r0\ncall 86\n",
            "ldxdw %r1, [%r10-48]\nmov %r0, %r1\nexit\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R1 !read_ok",
    ),
    (
        "release of the context",
        Mode::Tc,
        "call 86\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 type=ctx expected=sock_common",
    ),
    (
        "release of NULL",
        Mode::Tc,
        "mov %r1, 0\ncall 86\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 type=scalar expected=sock_common",
    ),
    (
        "maybe-NULL socket passed to release",
        Mode::Tc,
        concat!(sk_lookup!(), "mov %r1, %r0\ncall 86\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "type=sock_or_null expected=sock",
    ),
    (
        "kernel object passed to sk_release",
        Mode::Tc,
        concat!(
            skb_ct!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R1 type=ptr_ expected=sock_common",
    ),
    (
        "maybe-NULL object passed to a release kfunc",
        Mode::Xdp,
        concat!(
            xdp_ct!(),
            "mov %r1, %r0\ncall kfunc 100003\nmov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "Possibly NULL pointer passed to trusted arg0",
    ),
    (
        "stack pointer passed to a release kfunc",
        Mode::Xdp,
        "mov %r1, %r10\ncall kfunc 100003\nmov %r0, 2\nexit",
        Errno::EINVAL,
        "arg#0 pointer type STRUCT nf_conn must point to scalar, or struct with scalar",
    ),
    (
        "kfunc double release",
        Mode::Xdp,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r6\ncall kfunc 100003\n",
            "mov %r1, %r6\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "18: R6 !read_ok",
    ),
    // --- dereferences
    (
        "deref of sock_or_null",
        Mode::Tc,
        concat!(sk_lookup!(), "ldxw %r1, [%r0+0]\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "R0 invalid mem access 'sock_or_null'",
    ),
    (
        "deref of a maybe-NULL kernel object",
        Mode::Xdp,
        concat!(xdp_ct!(), "ldxw %r1, [%r0+168]\nmov %r0, 2\nexit"),
        Errno::EACCES,
        "R0 invalid mem access 'ptr_or_null_'",
    ),
    (
        "arithmetic on sock_or_null",
        Mode::Tc,
        concat!(sk_lookup!(), "add %r0, 4\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "R0 pointer arithmetic on sock_or_null prohibited, null-check it first",
    ),
    (
        "arithmetic on sock",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nadd %r6, 4\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R6 pointer arithmetic on sock prohibited",
    ),
    (
        "write into a socket",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nstw [%r0+16], 1\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R0 cannot write into sock",
    ),
    (
        "socket read past struct bpf_sock",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nldxw %r2, [%r0+80]\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R0 invalid sock access off=80 size=4",
    ),
    (
        "kernel object read without CAP_PERFMON",
        Mode::Xdp,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nldxw %r2, [%r0+168]\nmov %r1, %r0\ncall kfunc 100003\n",
            "out: mov %r0, 2\nexit"
        ),
        Errno::EPERM,
        "'struct nf_conn' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
    ),
    (
        "write to a non-writable nf_conn field",
        Mode::XdpPriv,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nstw [%r0+128], 1\nmov %r1, %r0\ncall kfunc 100003\n",
            "out: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "no write support to nf_conn at off 128",
    ),
    (
        "write past the end of nf_conn's mark",
        Mode::XdpPriv,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nstdw [%r0+168], 1\nmov %r1, %r0\ncall kfunc 100003\n",
            "out: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "write access at off 168 with size 8 beyond the member of nf_conn ended at 172",
    ),
    (
        "read past the exposed nf_conn",
        Mode::XdpPriv,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nldxw %r2, [%r0+176]\nmov %r1, %r0\ncall kfunc 100003\n",
            "out: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "access beyond struct nf_conn at off 176 size 4",
    ),
    // --- kfunc calls
    (
        "unknown kfunc id",
        Mode::Xdp,
        "call kfunc 4242\nmov %r0, 2\nexit",
        Errno::EINVAL,
        "kernel btf_id 4242 is not a function",
    ),
    (
        "kfunc not allowed for the program type",
        Mode::Skb,
        concat!(skb_ct!(), "mov %r0, 0\nexit"),
        Errno::EACCES,
        "calling kernel function bpf_skb_ct_lookup is not allowed",
    ),
    (
        "kfunc context argument is not the context",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r1, %r10\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EINVAL,
        "arg#0 expected pointer to ctx, but got fp",
    ),
    (
        "kfunc for another program type's context",
        Mode::Tc,
        concat!(xdp_ct!(), "mov %r0, 0\nexit"),
        Errno::EINVAL,
        "arg#0 expected pointer to STRUCT xdp_md, but got ctx of sched_cls",
    ),
    (
        "kfunc __sz larger than its buffer",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r3, 44\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EINVAL,
        "invalid read from stack R2 off=-40 size=44",
    ),
    (
        "kfunc __sz over unwritten stack",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r5, 24\nadd %r4, -8\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "invalid read from stack R4 off=-64 size=24",
    ),
    (
        "kfunc __sz not a scalar",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r5, %r10\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "R5 type=fp expected=scalar",
    ),
    (
        "kfunc __sz unbounded",
        Mode::Xdp,
        concat!(
            "mov %r6, %r1\ncall 7\nmov %r9, %r0\nlsh %r9, 32\nrsh %r9, 1\nmov %r1, %r6\n",
            ct_args!(),
            "mov %r5, %r9\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "R5 unbounded memory access",
    ),
    (
        "kfunc NULL tuple with a size",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r2, 0\ncall kfunc 100001\nmov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "Possibly NULL pointer passed to trusted arg1",
    ),
    (
        "kfunc NULL opts of size 0",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r4, 0\nmov %r5, 0\ncall kfunc 100001\n",
            "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "Possibly NULL pointer passed to trusted arg3",
    ),
    (
        "kfunc NULL tuple of size 0",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r2, 0\nmov %r3, 0\ncall kfunc 100001\n",
            "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
        Errno::EACCES,
        "Possibly NULL pointer passed to trusted arg1",
    ),
    // --- helper availability and prototypes
    (
        "unknown helper id",
        Mode::Tc,
        "call 9999\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "invalid func unknown#9999",
    ),
    (
        "sk_lookup_tcp not offered to socket filters",
        Mode::Skb,
        concat!(sk_lookup!(), "mov %r0, 0\nexit"),
        Errno::EINVAL,
        "program of this type cannot use helper bpf_sk_lookup_tcp#84",
    ),
    (
        "skb_load_bytes not offered to XDP",
        Mode::Xdp,
        "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall 26\nmov %r0, 2\nexit",
        Errno::EINVAL,
        "program of this type cannot use helper bpf_skb_load_bytes#26",
    ),
    (
        "skb_load_bytes into a too small stack buffer",
        Mode::Tc,
        "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 16\ncall 26\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "invalid write to stack R3 off=-8 size=16",
    ),
    (
        "skb_load_bytes of zero bytes",
        Mode::Skb,
        "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 26\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R4 invalid zero-sized read",
    ),
    (
        "skb_load_bytes of an unbounded size",
        Mode::Tc,
        concat!(
            "mov %r6, %r1\ncall 7\nmov %r4, %r0\nlsh %r4, 32\nrsh %r4, 1\nor %r4, 1\nmov %r1, %r6\n",
            "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\ncall 26\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R4 unbounded memory access",
    ),
    (
        "sk_lookup_tcp with an unwritten tuple",
        Mode::Tc,
        "mov %r2, %r10\nadd %r2, -40\nmov %r3, 36\nmov %r4, 0\nmov %r5, 0\ncall 84\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid read from stack R2 off=-40 size=36",
    ),
    (
        "tc sk_assign with a maybe-NULL socket",
        Mode::Tc,
        concat!(
            "mov %r6, %r1\n",
            sk_lookup!(),
            "mov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R2 type=sock_or_null expected=sock_common",
    ),
    (
        "sk_lookup sk_assign with a number",
        Mode::SkLookup,
        "mov %r2, 7\nmov %r3, 0\ncall 124\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R2 type=scalar expected=sock_or_null",
    ),
    // --- socket maps (map handle 4: sockmap(4, 8))
    (
        "sockmap socket leaked",
        Mode::SkLookup,
        concat!(lookup!("4"), "mov %r0, 1\nexit"),
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=5",
    ),
    (
        "sockmap socket released twice",
        Mode::SkLookup,
        concat!(
            lookup!("4"),
            "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r6\ncall 86\nmov %r1, %r6\ncall 86\n",
            "out: mov %r0, 1\nexit"
        ),
        Errno::EACCES,
        "R6 !read_ok",
    ),
    (
        "sockmap socket read as a map value",
        Mode::Tc,
        concat!(
            lookup!("4"),
            "jeq %r0, 0, out\nldxdw %r2, [%r0+0]\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R0 invalid sock access off=0 size=8",
    ),
    (
        "sockmap update with a stack value",
        Mode::Tc,
        "stw [%r10-4], 0\nstdw [%r10-16], 0\nlddw %r1, map_fd 4\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\ncall 2\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R3 type=fp expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
    ),
    (
        "sockmap delete from cgroup skb",
        Mode::CgroupSkb,
        "stw [%r10-4], 0\nlddw %r1, map_fd 4\nmov %r2, %r10\nadd %r2, -4\ncall 3\nmov %r0, 1\nexit",
        Errno::EINVAL,
        "cannot pass map_type 15 into func bpf_map_delete_elem#3",
    ),
    (
        "sockmap to tail call",
        Mode::Tc,
        "lddw %r2, map_fd 4\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "cannot pass map_type 15 into func bpf_tail_call#12",
    ),
];

/// (name, mode, program): programs the same rules let through.
pub const POSITIVE: &[(&str, Mode, &str)] = &[
    (
        "lookup, null check, release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "release through a copy made before the null check",
        Mode::Xdp,
        concat!(
            sk_lookup!(),
            "mov %r6, %r0\njeq %r0, 0, out\nmov %r1, %r6\ncall 86\nout: mov %r0, 2\nexit"
        ),
    ),
    (
        "reference dropped on the NULL branch",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jne %r0, 0, +2\nmov %r0, 0\nexit\nmov %r1, %r0\ncall 86\nmov %r0, 0\nexit"
        ),
    ),
    (
        "socket fields read before release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nldxw %r7, [%r0+4]\nldxb %r8, [%r0+12]\nmov %r1, %r0\ncall 86\n",
            "out: mov %r0, 0\nexit"
        ),
    ),
    (
        "spilled socket filled and released",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "stxdw [%r10-48], %r0\nldxdw %r1, [%r10-48]\njeq %r1, 0, out\ncall 86\n",
            "out: mov %r0, 0\nexit"
        ),
    ),
    (
        "released in a subprogram",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall local rel\nout: mov %r0, 0\nexit\n",
            "rel: call 86\nmov %r0, 0\nexit"
        ),
    ),
    (
        "both branches release",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r6, %r0\nldxw %r2, [%r6+4]\njeq %r2, 2, a\n",
            "mov %r1, %r6\ncall 86\nja out\na: mov %r1, %r6\ncall 86\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "kfunc acquire and release",
        Mode::Xdp,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
    ),
    (
        "kfunc object read and mark written",
        Mode::XdpPriv,
        concat!(
            xdp_ct!(),
            "jeq %r0, 0, out\nldxw %r2, [%r0+168]\nadd %r2, 1\nstxw [%r0+168], %r2\n",
            "ldxw %r3, [%r0+128]\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
    ),
    (
        "tc conntrack lookup",
        Mode::Tc,
        concat!(
            skb_ct!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "kfunc options of size 0",
        Mode::Xdp,
        concat!(
            ct_args!(),
            "mov %r5, 0\ncall kfunc 100001\n",
            "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
        ),
    ),
    (
        "skb_load_bytes fills unwritten stack",
        Mode::Tc,
        "mov %r2, 0\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 16\ncall 26\nldxdw %r0, [%r10-16]\nexit",
    ),
    (
        "skb_load_bytes in a socket filter",
        Mode::Skb,
        "mov %r2, 14\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 4\ncall 26\nldxw %r0, [%r10-4]\nexit",
    ),
    (
        "get_current_pid_tgid in tc",
        Mode::Tc,
        "call 14\nrsh %r0, 32\nexit",
    ),
    (
        "get_current_pid_tgid in xdp",
        Mode::Xdp,
        "call 14\nmov %r0, 2\nexit",
    ),
    (
        "get_current_pid_tgid in a socket filter",
        Mode::Skb,
        "call 14\nmov %r0, 0\nexit",
    ),
    (
        "xdp redirect",
        Mode::Xdp,
        "mov %r1, 3\nmov %r2, 0\ncall 23\nexit",
    ),
    (
        "tc redirect",
        Mode::Tc,
        "mov %r1, 3\nmov %r2, 0\ncall 23\nexit",
    ),
    (
        "tc sk_assign of a looked-up socket",
        Mode::Tc,
        concat!(
            "mov %r6, %r1\n",
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n",
            "mov %r1, %r7\ncall 86\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "sk_lookup sk_assign of NULL",
        Mode::SkLookup,
        "mov %r2, 0\nmov %r3, 0\ncall 124\nmov %r0, 0\nexit",
    ),
    (
        "release of NULL-checked socket, privileged",
        Mode::TcPriv,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "sockmap lookup, sk_assign, release",
        Mode::SkLookup,
        concat!(
            "mov %r6, %r1\n",
            lookup!("4"),
            "jeq %r0, 0, out\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n",
            "mov %r1, %r7\ncall 86\nout: mov %r0, 1\nexit"
        ),
    ),
    (
        "sockmap socket field read",
        Mode::Xdp,
        concat!(
            lookup!("4"),
            "jeq %r0, 0, out\nldxw %r2, [%r0+4]\nmov %r1, %r0\ncall 86\nout: mov %r0, 2\nexit"
        ),
    ),
    (
        "sockmap delete from tc",
        Mode::Tc,
        "stw [%r10-4], 0\nlddw %r1, map_fd 4\nmov %r2, %r10\nadd %r2, -4\ncall 3\nmov %r0, 0\nexit",
    ),
    (
        "sockmap update with a looked-up socket",
        Mode::Tc,
        concat!(
            lookup!("4"),
            "jeq %r0, 0, out\nmov %r6, %r0\nlddw %r1, map_fd 4\nmov %r2, %r10\nadd %r2, -4\n",
            "mov %r3, %r6\nmov %r4, 0\ncall 2\nmov %r1, %r6\ncall 86\nout: mov %r0, 0\nexit"
        ),
    ),
    (
        "fill of a released spilled copy, unused",
        Mode::Tc,
        concat!(
            sk_lookup!(),
            "jeq %r0, 0, out\nstxdw [%r10-48], %r0\nmov %r1, %r0\ncall 86\n",
            "ldxdw %r1, [%r10-48]\nmov %r0, 0\nexit\nout: mov %r0, 0\nexit"
        ),
    ),
];
