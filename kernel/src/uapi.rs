//! Numbers and layouts that users depend on.
//!
//! Mirrors `include/uapi/linux/bpf.h` and `bpf_common.h`: instruction classes and opcode fields,
//! program, map and attach types, helper ids and flag sets. The values are the kernel's; a program
//! built for Linux means the same thing here.

use bitflags::bitflags;

/// Instruction classes (`code & 0x07`).
pub mod class {
    /// Legacy packet loads and `ld_imm64`.
    pub const LD: u8 = 0x00;
    /// Register loads.
    pub const LDX: u8 = 0x01;
    /// Immediate stores.
    pub const ST: u8 = 0x02;
    /// Register stores and atomics.
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls and exit.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// Source operand bit (`code & 0x08`) for ALU and JMP classes.
pub mod src {
    /// Immediate operand (`BPF_K`).
    pub const K: u8 = 0x00;
    /// Register operand (`BPF_X`).
    pub const X: u8 = 0x08;
}

/// ALU operations (`code & 0xf0`).
pub mod alu {
    /// `dst += src`
    pub const ADD: u8 = 0x00;
    /// `dst -= src`
    pub const SUB: u8 = 0x10;
    /// `dst *= src`
    pub const MUL: u8 = 0x20;
    /// `dst /= src` (`off` 1: signed)
    pub const DIV: u8 = 0x30;
    /// `dst |= src`
    pub const OR: u8 = 0x40;
    /// `dst &= src`
    pub const AND: u8 = 0x50;
    /// `dst <<= src`
    pub const LSH: u8 = 0x60;
    /// `dst >>= src` (logical)
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`
    pub const NEG: u8 = 0x80;
    /// `dst %= src` (`off` 1: signed)
    pub const MOD: u8 = 0x90;
    /// `dst ^= src`
    pub const XOR: u8 = 0xa0;
    /// `dst = src` (`off` 8/16/32: sign-extending)
    pub const MOV: u8 = 0xb0;
    /// `dst >>= src` (arithmetic)
    pub const ARSH: u8 = 0xc0;
    /// Byte swap (`BPF_END`): `BPF_TO_LE`/`BPF_TO_BE` in ALU, unconditional in ALU64.
    pub const END: u8 = 0xd0;
}

/// Jump operations (`code & 0xf0`).
pub mod jmp {
    /// Unconditional jump (`ja`; in JMP32 the `ja32` form with a 32-bit offset in `imm`).
    pub const JA: u8 = 0x00;
    /// `==`
    pub const JEQ: u8 = 0x10;
    /// unsigned `>`
    pub const JGT: u8 = 0x20;
    /// unsigned `>=`
    pub const JGE: u8 = 0x30;
    /// `dst & src != 0`
    pub const JSET: u8 = 0x40;
    /// `!=`
    pub const JNE: u8 = 0x50;
    /// signed `>`
    pub const JSGT: u8 = 0x60;
    /// signed `>=`
    pub const JSGE: u8 = 0x70;
    /// Function call: helper, BPF-to-BPF (`src` = 1) or kfunc (`src` = 2).
    pub const CALL: u8 = 0x80;
    /// Return from the current function.
    pub const EXIT: u8 = 0x90;
    /// unsigned `<`
    pub const JLT: u8 = 0xa0;
    /// unsigned `<=`
    pub const JLE: u8 = 0xb0;
    /// signed `<`
    pub const JSLT: u8 = 0xc0;
    /// signed `<=`
    pub const JSLE: u8 = 0xd0;
    /// `may_goto`: a bounded loop budget check (JMP | JCOND, `src` = 0).
    pub const JCOND: u8 = 0xe0;
}

/// Load/store size (`code & 0x18`).
pub mod size {
    /// 32 bits.
    pub const W: u8 = 0x00;
    /// 16 bits.
    pub const H: u8 = 0x08;
    /// 8 bits.
    pub const B: u8 = 0x10;
    /// 64 bits.
    pub const DW: u8 = 0x18;
}

/// Load/store mode (`code & 0xe0`).
pub mod mode {
    /// 64-bit immediate (`ld_imm64`, two slots).
    pub const IMM: u8 = 0x00;
    /// Legacy packet absolute load.
    pub const ABS: u8 = 0x20;
    /// Legacy packet indirect load.
    pub const IND: u8 = 0x40;
    /// Regular memory access.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load.
    pub const MEMSX: u8 = 0x80;
    /// Atomic operation (STX only).
    pub const ATOMIC: u8 = 0xc0;
}

/// Atomic operation codes, in `imm` of `STX | ATOMIC` instructions.
pub mod atomic {
    /// `*ptr += src`
    pub const ADD: i32 = 0x00;
    /// `*ptr |= src`
    pub const OR: i32 = 0x40;
    /// `*ptr &= src`
    pub const AND: i32 = 0x50;
    /// `*ptr ^= src`
    pub const XOR: i32 = 0xa0;
    /// Modifier: the old value is returned in `src`.
    pub const FETCH: i32 = 0x01;
    /// `src = xchg(ptr, src)`
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// `r0 = cmpxchg(ptr, r0, src)`
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
    /// `dst = load_acquire(src + off)` (Linux 6.15+).
    pub const LOAD_ACQ: i32 = 0x100;
    /// `store_release(dst + off, src)` (Linux 6.15+).
    pub const STORE_REL: i32 = 0x110;
}

/// `BPF_END` direction in the ALU class (the source bit).
pub mod end {
    /// Convert to little endian (`BPF_TO_LE`, = `BPF_K`).
    pub const TO_LE: u8 = 0x00;
    /// Convert to big endian (`BPF_TO_BE`, = `BPF_X`).
    pub const TO_BE: u8 = 0x08;
}

/// `src_reg` values of `ld_imm64` that make the immediate a reference rather than a number.
pub mod pseudo {
    /// `imm` is a map handle (`BPF_PSEUDO_MAP_FD`).
    pub const MAP_FD: u8 = 1;
    /// `imm` is a map handle, second `imm` an offset into its value (`BPF_PSEUDO_MAP_VALUE`).
    pub const MAP_VALUE: u8 = 2;
    /// `imm` is a BTF id of a kernel variable (`BPF_PSEUDO_BTF_ID`).
    pub const BTF_ID: u8 = 3;
    /// `imm` is a function offset (`BPF_PSEUDO_FUNC`).
    pub const FUNC: u8 = 4;
    /// `imm` is a map index into `fd_array` (`BPF_PSEUDO_MAP_IDX`).
    pub const MAP_IDX: u8 = 5;
    /// `imm` is a map index, with a value offset (`BPF_PSEUDO_MAP_IDX_VALUE`).
    pub const MAP_IDX_VALUE: u8 = 6;
    /// `call` with `src_reg` 1: BPF-to-BPF call (`BPF_PSEUDO_CALL`).
    pub const CALL: u8 = 1;
    /// `call` with `src_reg` 2: kfunc call (`BPF_PSEUDO_KFUNC_CALL`).
    pub const KFUNC_CALL: u8 = 2;
}

/// Program limits from `include/linux/bpf.h` and `filter.h`.
pub mod limits {
    /// Stack bytes per frame (`MAX_BPF_STACK`).
    pub const MAX_BPF_STACK: usize = 512;
    /// Nested BPF-to-BPF call frames (`MAX_CALL_FRAMES`).
    pub const MAX_CALL_FRAMES: usize = 8;
    /// Successful tail calls per invocation (`MAX_TAIL_CALL_CNT`, 33 since Linux 5.17).
    pub const MAX_TAIL_CALL_CNT: u32 = 33;
    /// Instructions a program may have (`BPF_COMPLEXITY_LIMIT_INSNS`, for a privileged loader).
    pub const BPF_MAXINSNS: usize = 1_000_000;
    /// Number of registers R0..R10.
    pub const MAX_BPF_REG: usize = 11;
}

/// Program types (`enum bpf_prog_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum ProgType {
    Unspec = 0,
    SocketFilter = 1,
    Kprobe = 2,
    SchedCls = 3,
    SchedAct = 4,
    Tracepoint = 5,
    Xdp = 6,
    CgroupSkb = 8,
    SkReuseport = 21,
    SkLookup = 30,
    Syscall = 31,
    Netfilter = 32,
    /// kbpf-only: a raw-buffer program (context = a byte buffer, `r2` = its length), the type the
    /// conformance suite's programs run as. Outside the kernel's range.
    RawBuffer = 0x1000,
}

impl ProgType {
    /// Parses the name used by bpftool and the `.data` headers (`socket_filter`, `xdp`, ...).
    pub fn from_name(name: &str) -> Option<ProgType> {
        Some(match name {
            "socket_filter" | "socket" => ProgType::SocketFilter,
            "kprobe" => ProgType::Kprobe,
            "sched_cls" | "tc" | "classifier" => ProgType::SchedCls,
            "sched_act" | "action" => ProgType::SchedAct,
            "tracepoint" => ProgType::Tracepoint,
            "xdp" => ProgType::Xdp,
            "cgroup_skb" => ProgType::CgroupSkb,
            "sk_reuseport" => ProgType::SkReuseport,
            "sk_lookup" => ProgType::SkLookup,
            "syscall" => ProgType::Syscall,
            "netfilter" => ProgType::Netfilter,
            "raw_buffer" | "raw" => ProgType::RawBuffer,
            _ => return None,
        })
    }

    /// The name bpftool prints.
    pub fn name(self) -> &'static str {
        match self {
            ProgType::Unspec => "unspec",
            ProgType::SocketFilter => "socket_filter",
            ProgType::Kprobe => "kprobe",
            ProgType::SchedCls => "sched_cls",
            ProgType::SchedAct => "sched_act",
            ProgType::Tracepoint => "tracepoint",
            ProgType::Xdp => "xdp",
            ProgType::CgroupSkb => "cgroup_skb",
            ProgType::SkReuseport => "sk_reuseport",
            ProgType::SkLookup => "sk_lookup",
            ProgType::Syscall => "syscall",
            ProgType::Netfilter => "netfilter",
            ProgType::RawBuffer => "raw_buffer",
        }
    }
}

/// Map types (`enum bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum MapType {
    Unspec = 0,
    Hash = 1,
    Array = 2,
    ProgArray = 3,
    PercpuHash = 5,
    PercpuArray = 6,
    Sockmap = 15,
    Sockhash = 18,
}

impl MapType {
    /// Parses the name bpftool uses (`array`, `hash`, `prog_array`, ...).
    pub fn from_name(name: &str) -> Option<MapType> {
        Some(match name {
            "hash" => MapType::Hash,
            "array" => MapType::Array,
            "prog_array" => MapType::ProgArray,
            "percpu_hash" => MapType::PercpuHash,
            "percpu_array" => MapType::PercpuArray,
            "sockmap" => MapType::Sockmap,
            "sockhash" => MapType::Sockhash,
            _ => return None,
        })
    }
}

/// Attach types (`enum bpf_attach_type`), the subset kbpf uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum AttachType {
    CgroupInetIngress = 0,
    CgroupInetEgress = 1,
    SkLookup = 36,
    Xdp = 37,
    SkReuseportSelect = 39,
    SkReuseportSelectOrMigrate = 40,
    Netfilter = 45,
    TcxIngress = 46,
    TcxEgress = 47,
}

bitflags! {
    /// `map_update_elem` flags (`BPF_ANY` is the empty set).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct UpdateFlags: u64 {
        /// Create a new element only if it does not exist (`BPF_NOEXIST`).
        const NOEXIST = 1;
        /// Update an existing element only (`BPF_EXIST`).
        const EXIST = 2;
        /// Take the element's spin lock (`BPF_F_LOCK`).
        const LOCK = 4;
    }
}

impl UpdateFlags {
    /// `BPF_ANY`: create or update.
    pub const ANY: UpdateFlags = UpdateFlags::empty();
}

bitflags! {
    /// `map_create` flags (`map_flags`), the subset kbpf accepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MapFlags: u32 {
        /// Do not preallocate hash elements (`BPF_F_NO_PREALLOC`).
        const NO_PREALLOC = 1 << 0;
        /// Programs may only read (`BPF_F_RDONLY_PROG`).
        const RDONLY_PROG = 1 << 7;
        /// Programs may only write (`BPF_F_WRONLY_PROG`).
        const WRONLY_PROG = 1 << 8;
        /// The map may be an inner map of a map-in-map (`BPF_F_INNER_MAP`, arrays): kbpf has
        /// no map-in-map, so its one effect is the kernel's other one, lookups in the array are
        /// calls rather than inlined (`array_map_gen_lookup` declines).
        const INNER_MAP = 1 << 12;
    }
}

bitflags! {
    /// `prog_load` flags (`prog_flags`), the subset kbpf accepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ProgFlags: u32 {
        /// Require strict alignment (`BPF_F_STRICT_ALIGNMENT`).
        const STRICT_ALIGNMENT = 1 << 0;
        /// Test alignment rules (`BPF_F_ANY_ALIGNMENT`).
        const ANY_ALIGNMENT = 1 << 1;
        /// Verifier self-test: fill the upper half of 32-bit definitions nothing reads it of
        /// with random bits (`BPF_F_TEST_RND_HI32`).
        const TEST_RND_HI32 = 1 << 2;
        /// XDP program that understands multi-buffer frames (`BPF_F_XDP_HAS_FRAGS`).
        const XDP_HAS_FRAGS = 1 << 5;
        /// Sleepable program (`BPF_F_SLEEPABLE`).
        const SLEEPABLE = 1 << 4;
    }
}

bitflags! {
    /// Attach flags of the multi-program API (`bpf_mprog`, used by tcx), for
    /// `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` `attach_flags` and tcx `BPF_LINK_CREATE` `flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MprogFlags: u32 {
        /// Replace the program given by `replace_bpf_fd` in place (`BPF_F_REPLACE`).
        const REPLACE = 1 << 2;
        /// Right before the relative object, or first (`BPF_F_BEFORE`).
        const BEFORE = 1 << 3;
        /// Right after the relative object, or last (`BPF_F_AFTER`).
        const AFTER = 1 << 4;
        /// The relative object is given by id, not fd (`BPF_F_ID`).
        const ID = 1 << 5;
        /// The relative object is a link (`BPF_F_LINK`, same value as for link_create).
        const LINK = 1 << 13;
        /// kbpf extension, the seed's (v2 patch) `BPF_F_FIRST`: pinned at the head for the
        /// bundle's life. v2 had it at 1 << 5, which the final uapi gave to `BPF_F_ID`; kbpf
        /// puts it on a bit no final attach flag uses.
        const FIRST = 1 << 30;
        /// kbpf extension, the seed's `BPF_F_LAST`: pinned at the tail (v2: 1 << 6, which the
        /// final uapi uses for cgroup's `BPF_F_PREORDER`).
        const LAST = 1 << 31;
    }
}

/// tcx verdicts (`enum tcx_action_base` in `include/uapi/linux/bpf.h`).
pub mod tcx_action {
    /// Continue with the next program (`TCX_NEXT`).
    pub const NEXT: i32 = -1;
    /// Accept the packet (`TCX_PASS`).
    pub const PASS: i32 = 0;
    /// Drop the packet (`TCX_DROP`).
    pub const DROP: i32 = 2;
    /// The program redirected the packet (`TCX_REDIRECT`).
    pub const REDIRECT: i32 = 7;
}

/// Helper function ids (`enum bpf_func_id`), the ones kbpf implements or judges.
pub mod func {
    #![allow(missing_docs)]
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const KTIME_GET_NS: i32 = 5;
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const SKB_STORE_BYTES: i32 = 9;
    pub const L3_CSUM_REPLACE: i32 = 10;
    pub const L4_CSUM_REPLACE: i32 = 11;
    pub const TAIL_CALL: i32 = 12;
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    pub const REDIRECT: i32 = 23;
    pub const SKB_LOAD_BYTES: i32 = 26;
    pub const CSUM_DIFF: i32 = 28;
    pub const XDP_ADJUST_HEAD: i32 = 44;
    pub const XDP_ADJUST_META: i32 = 54;
    pub const XDP_ADJUST_TAIL: i32 = 65;
    pub const SK_SELECT_REUSEPORT: i32 = 82;
    pub const SK_LOOKUP_TCP: i32 = 84;
    pub const SK_LOOKUP_UDP: i32 = 85;
    pub const SK_RELEASE: i32 = 86;
    pub const SKC_LOOKUP_TCP: i32 = 99;
    pub const JIFFIES64: i32 = 118;
    pub const SK_ASSIGN: i32 = 124;
    pub const LOOP: i32 = 181;
    pub const XDP_LOAD_BYTES: i32 = 189;
    pub const XDP_STORE_BYTES: i32 = 190;
    /// The conformance suite's test helper, in the raw-buffer program type only (it shares id 5
    /// with `ktime_get_ns`, which the raw-buffer type does not offer): returns its argument, and
    /// stops the program with r0 = 0 when the argument is 0 (uBPF's "unwind").
    pub const CONFORMANCE_UNWIND: i32 = 5;
}

static_assertions::const_assert_eq!(ProgType::SkLookup as u32, 30);
static_assertions::const_assert_eq!(MapType::ProgArray as u32, 3);
static_assertions::const_assert_eq!(AttachType::TcxEgress as u32, 47);
