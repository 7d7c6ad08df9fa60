//! The verifier's negative corpus (one program per rule, each with the kernel's errno and a
//! log fragment) and the positive controls the same rules must let through, as data: kbpf's
//! own tests (`verifier_negative.rs`) and the host-kernel differential
//! (`shim/tests/verifier_host.rs`) both read it.

#![allow(dead_code)]

use kbpf::Errno;
use kbpf::map::MapAttr;
use kbpf::uapi::{MapFlags, MapType, ProgType};

/// Map handles the programs use: 0 hash(4, 8), 1 array(4, 16, max 1), 2 prog_array(4, 4),
/// 3 read-only array(4, 8), 4 sockmap(4, 8).
pub fn maps(h: u32) -> Option<MapAttr> {
    Some(match h {
        0 => MapAttr::new(MapType::Hash, 4, 8, 4),
        1 => MapAttr::new(MapType::Array, 4, 16, 1),
        2 => MapAttr::new(MapType::ProgArray, 4, 4, 4),
        3 => MapAttr {
            flags: MapFlags::RDONLY_PROG,
            ..MapAttr::new(MapType::Array, 4, 8, 1)
        },
        4 => MapAttr::new(MapType::Sockmap, 4, 8, 4),
        _ => return None,
    })
}

/// How a case is verified: the program type and privilege mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// kbpf's raw-buffer type, 64-byte context.
    Raw,
    /// Socket filter.
    Skb,
    /// TC classifier.
    Tc,
    /// Raw buffer, root's rules.
    Priv,
    /// Raw buffer, every back-edge refused.
    NoLoops,
}

impl Mode {
    /// The program type the case is verified as.
    pub fn prog_type(self) -> ProgType {
        match self {
            Mode::Skb => ProgType::SocketFilter,
            Mode::Tc => ProgType::SchedCls,
            _ => ProgType::RawBuffer,
        }
    }
}

/// Looks up key 0 in map `m` (leaves the result in r0).
#[macro_export]
macro_rules! lookup {
    ($m:literal) => {
        concat!(
            "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd ",
            $m,
            "\ncall 1\n"
        )
    };
}

/// (name, mode, program, errno, log fragment).
pub const NEGATIVE: &[(&str, Mode, &str, Errno, &str)] = &[
    // --- registers
    (
        "uninit r0 at exit",
        Mode::Raw,
        "exit",
        Errno::EACCES,
        "R0 !read_ok",
    ),
    (
        "uninit src",
        Mode::Raw,
        "mov %r0, %r3\nexit",
        Errno::EACCES,
        "R3 !read_ok",
    ),
    (
        "uninit dst of add",
        Mode::Raw,
        "add %r4, 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R4 !read_ok",
    ),
    (
        "uninit in jump",
        Mode::Raw,
        "jeq %r5, 0, +0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R5 !read_ok",
    ),
    (
        "write to r10",
        Mode::Raw,
        "mov %r10, 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "frame pointer is read only",
    ),
    (
        "add to r10",
        Mode::Raw,
        "add %r10, -8\nmov %r0, 0\nexit",
        Errno::EACCES,
        "frame pointer is read only",
    ),
    (
        "load into r10",
        Mode::Raw,
        "ldxdw %r10, [%r1]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "frame pointer is read only",
    ),
    (
        "r1 clobbered by helper",
        Mode::Raw,
        "call 7\nmov %r0, %r1\nexit",
        Errno::EACCES,
        "R1 !read_ok",
    ),
    (
        "r5 clobbered by helper",
        Mode::Raw,
        "call 7\nmov %r0, %r5\nexit",
        Errno::EACCES,
        "R5 !read_ok",
    ),
    (
        "r0 after tail call",
        Mode::Raw,
        "lddw %r2, map_fd 2\nmov %r3, 0\ncall 12\nexit",
        Errno::EACCES,
        "R0 !read_ok",
    ),
    // --- stack
    (
        "stack write below frame",
        Mode::Raw,
        "stdw [%r10-520], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid write to stack R10 off=-520 size=8",
    ),
    (
        "stack read below frame",
        Mode::Raw,
        "ldxdw %r0, [%r10-520]\nexit",
        Errno::EACCES,
        "invalid read from stack R10 off=-520 size=8",
    ),
    (
        "stack write at fp",
        Mode::Raw,
        "stw [%r10+0], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid write to stack R10 off=0 size=4",
    ),
    (
        "stack straddles fp",
        Mode::Raw,
        "stdw [%r10-4], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "misaligned stack access off 0+0+-4 size 8",
    ),
    (
        "uninit stack read",
        Mode::Raw,
        "ldxdw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "invalid read from stack R10 off=-8 size=8",
    ),
    (
        "partly written stack read",
        Mode::Raw,
        "stw [%r10-8], 0\nldxdw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "invalid read from stack off -8+4 size 8",
    ),
    (
        "partially init stack read",
        Mode::Raw,
        "stw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "invalid read from stack off -8+4 size 8",
    ),
    (
        "stack via copy out of bounds",
        Mode::Raw,
        "mov %r2, %r10\nadd %r2, -512\nstb [%r2-1], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid write to stack R2 off=-513 size=1",
    ),
    (
        "subtract from stack pointer",
        Mode::Raw,
        "mov %r2, %r10\nsub %r2, 8\nmov %r0, 0\nexit",
        Errno::EACCES,
        "subtraction from stack pointer prohibited",
    ),
    (
        "variable stack offset",
        Mode::Raw,
        "ldxb %r3, [%r1]\nmov %r2, %r10\nadd %r2, -64\nadd %r2, %r3\nmov %r0, 0\nexit",
        Errno::EACCES,
        "variable stack access prohibited for !root",
    ),
    (
        "partial pointer spill",
        Mode::Raw,
        "stxw [%r10-8], %r1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid size of register spill",
    ),
    (
        "corrupt spilled pointer",
        Mode::Raw,
        "stxdw [%r10-8], %r1\nstb [%r10-8], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "attempt to corrupt spilled pointer on stack",
    ),
    (
        "partial pointer fill",
        Mode::Raw,
        "stxdw [%r10-8], %r1\nldxw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "invalid size of register fill",
    ),
    (
        "filled pointer returned",
        Mode::Raw,
        "stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "R0 leaks addr as return value",
    ),
    (
        "stack pointer returned",
        Mode::Raw,
        "mov %r0, %r10\nexit",
        Errno::EACCES,
        "R0 leaks addr as return value",
    ),
    (
        "ctx pointer returned",
        Mode::Raw,
        "mov %r0, %r1\nexit",
        Errno::EACCES,
        "R0 leaks addr as return value",
    ),
    // --- raw-buffer context
    (
        "ctx read past end",
        Mode::Raw,
        "ldxdw %r0, [%r1+60]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=60 size=8",
    ),
    (
        "ctx read before start",
        Mode::Raw,
        "ldxb %r0, [%r1-1]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=-1 size=1",
    ),
    (
        "ctx write past end",
        Mode::Raw,
        "stdw [%r1+64], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=64 size=8",
    ),
    (
        "ctx modified ptr past end",
        Mode::Raw,
        "add %r1, 60\nldxdw %r0, [%r1]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=60 size=8",
    ),
    (
        "ctx unbounded index",
        Mode::Priv,
        "ldxdw %r3, [%r1]\nand %r3, 0xffff\nadd %r1, %r3\nldxb %r0, [%r1]\nexit",
        Errno::EACCES,
        "invalid bpf_context access",
    ),
    (
        // Spectre v1: only stack and map-value pointers may move by a register.
        "ctx moved by a register",
        Mode::Raw,
        "ldxdw %r3, [%r1]\nand %r3, 0xffff\nadd %r1, %r3\nldxb %r0, [%r1]\nexit",
        Errno::EACCES,
        "R1 has pointer with unsupported alu operation, pointer arithmetic with it prohibited for !root",
    ),
    (
        "pointer stored into ctx",
        Mode::Raw,
        "stxdw [%r1], %r10\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R10 leaks addr into ctx",
    ),
    (
        "32-bit pointer arithmetic",
        Mode::Raw,
        "add32 %r1, 4\nmov %r0, 0\nexit",
        Errno::EACCES,
        "32-bit pointer arithmetic prohibited",
    ),
    (
        "pointer and",
        Mode::Raw,
        "and %r1, 4\nmov %r0, 0\nexit",
        Errno::EACCES,
        "bitwise operator &= on pointer prohibited",
    ),
    (
        "pointer mul",
        Mode::Raw,
        "mul %r1, 4\nmov %r0, 0\nexit",
        Errno::EACCES,
        "pointer arithmetic with *= operator prohibited",
    ),
    (
        "pointer minus pointer",
        Mode::Raw,
        "mov %r0, %r10\nsub %r0, %r1\nexit",
        Errno::EACCES,
        "pointer -= pointer prohibited",
    ),
    (
        "scalar minus pointer",
        Mode::Priv,
        "mov %r0, 8\nsub %r0, %r1\nexit",
        Errno::EACCES,
        "R0 tried to subtract pointer from scalar",
    ),
    (
        "scalar minus pointer, default mode",
        Mode::Raw,
        "mov %r0, 8\nsub %r0, %r1\nexit",
        Errno::EACCES,
        "R0 has pointer with unsupported alu operation",
    ),
    (
        "pointer negation",
        Mode::Raw,
        "neg %r1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 pointer arithmetic prohibited",
    ),
    (
        "partial pointer copy",
        Mode::Raw,
        "mov32 %r0, %r1\nexit",
        Errno::EACCES,
        "R1 partial copy of pointer",
    ),
    (
        "pointer comparison",
        Mode::Raw,
        "jeq %r1, %r10, +0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R10 pointer comparison prohibited",
    ),
    (
        "pointer vs constant",
        Mode::Raw,
        "jgt %r1, 5, +0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 pointer comparison prohibited",
    ),
    (
        "deref scalar",
        Mode::Raw,
        "mov %r2, 0\nldxdw %r0, [%r2]\nexit",
        Errno::EACCES,
        "R2 invalid mem access 'scalar'",
    ),
    (
        "deref r2 length",
        Mode::Raw,
        "ldxdw %r0, [%r2]\nexit",
        Errno::EACCES,
        "R2 invalid mem access 'scalar'",
    ),
    (
        "huge constant on pointer",
        Mode::Raw,
        "lddw %r3, 0x40000000\nadd %r1, %r3\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "math between ctx pointer and 1073741824 is not allowed",
    ),
    (
        "unbounded min on pointer",
        Mode::Raw,
        "ldxdw %r3, [%r1]\nadd %r1, %r3\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "math between ctx pointer and register with unbounded min value is not allowed",
    ),
    // --- __sk_buff
    (
        "skb write len",
        Mode::Skb,
        "stw [%r1+0], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=0 size=4",
    ),
    (
        "skb write mark in socket filter",
        Mode::Skb,
        "stw [%r1+8], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=8 size=4",
    ),
    (
        "skb read past cb",
        Mode::Skb,
        "ldxdw %r0, [%r1+64]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=64 size=8",
    ),
    (
        "skb misaligned",
        Mode::Skb,
        "ldxw %r0, [%r1+2]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=2 size=4",
    ),
    (
        "skb tc_classid in socket filter",
        Mode::Skb,
        "ldxw %r0, [%r1+72]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=72 size=4",
    ),
    (
        "skb modified ctx",
        Mode::Tc,
        "add %r1, 4\nldxw %r0, [%r1]\nexit",
        Errno::EACCES,
        "dereference of modified ctx ptr R1 off=4 disallowed",
    ),
    (
        "tc write len",
        Mode::Tc,
        "stw [%r1+0], 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=0 size=4",
    ),
    // --- maps
    (
        "null deref",
        Mode::Raw,
        concat!(lookup!("0"), "ldxdw %r0, [%r0]\nexit"),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    (
        "null deref of copy",
        Mode::Raw,
        concat!(lookup!("0"), "mov %r6, %r0\nldxdw %r0, [%r6]\nexit"),
        Errno::EACCES,
        "R6 invalid mem access 'map_value_or_null'",
    ),
    (
        "arith on or_null",
        Mode::Raw,
        concat!(lookup!("0"), "add %r0, 4\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "pointer arithmetic on map_value_or_null prohibited",
    ),
    (
        "map value past end",
        Mode::Raw,
        concat!(lookup!("0"), "jeq %r0, 0, +1\nldxdw %r0, [%r0+4]\nexit"),
        Errno::EACCES,
        "invalid access to map value, value_size=8 off=4 size=8",
    ),
    (
        "map value before start",
        Mode::Raw,
        concat!(
            lookup!("0"),
            "jeq %r0, 0, +1\nstb [%r0-1], 0\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "invalid access to map value, value_size=8 off=-1 size=1",
    ),
    (
        "map value unbounded index",
        Mode::Raw,
        concat!(
            "mov %r6, %r1\n",
            lookup!("0"),
            "jeq %r0, 0, +3\nldxw %r3, [%r6]\nadd %r0, %r3\nldxb %r0, [%r0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "unbounded memory access",
    ),
    (
        "map value index too big",
        Mode::Raw,
        concat!(
            "ldxb %r6, [%r1]\n",
            lookup!("0"),
            "jeq %r0, 0, +2\nadd %r0, %r6\nldxb %r0, [%r0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "invalid access to map value, value_size=8 off=255 size=1",
    ),
    (
        "pointer leaked into map",
        Mode::Raw,
        concat!(
            lookup!("0"),
            "jeq %r0, 0, +1\nstxdw [%r0], %r10\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R10 leaks addr into map",
    ),
    (
        "write to read-only map",
        Mode::Raw,
        concat!(
            lookup!("3"),
            "jeq %r0, 0, +1\nstb [%r0], 1\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "write into map forbidden",
    ),
    (
        "deref map pointer",
        Mode::Raw,
        "lddw %r1, map_fd 0\nldxdw %r0, [%r1]\nexit",
        Errno::EACCES,
        "R1 invalid mem access 'map_ptr'",
    ),
    (
        "arith on map pointer",
        Mode::Raw,
        "lddw %r1, map_fd 0\nadd %r1, 8\nmov %r0, 0\nexit",
        Errno::EACCES,
        "pointer arithmetic on map_ptr prohibited",
    ),
    (
        "unknown map",
        Mode::Raw,
        "lddw %r1, map_fd 9\nmov %r0, 0\nexit",
        Errno::EBADF,
        "fd 9 is not pointing to valid bpf_map",
    ),
    (
        "direct value off too big",
        Mode::Raw,
        "lddw %r1, map_value 1, 16\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "invalid access to map value pointer",
    ),
    (
        "direct value on hash",
        Mode::Raw,
        "lddw %r1, map_value 0, 0\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "invalid access to map value pointer",
    ),
    // --- helpers
    (
        "unknown helper",
        Mode::Raw,
        "call 9999\nexit",
        Errno::EINVAL,
        "invalid func unknown#9999",
    ),
    (
        "helper not for the type",
        Mode::Raw,
        "call 14\nexit",
        Errno::EINVAL,
        "program of this type cannot use helper bpf_get_current_pid_tgid#14",
    ),
    (
        "lookup with scalar map",
        Mode::Raw,
        "mov %r1, 0\nmov %r2, %r10\ncall 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 type=scalar expected=map_ptr",
    ),
    (
        "lookup with scalar key",
        Mode::Raw,
        "lddw %r1, map_fd 0\nmov %r2, 0\ncall 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R2 type=scalar expected=fp",
    ),
    (
        "lookup uninit key",
        Mode::Raw,
        "lddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid read from stack R2 off=-4 size=4",
    ),
    (
        "lookup key out of stack",
        Mode::Raw,
        "lddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -2\ncall 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid read from stack R2 off=-2 size=4",
    ),
    (
        "lookup uninit r2",
        Mode::Skb,
        "lddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R2 !read_ok",
    ),
    (
        "update uninit value",
        Mode::Raw,
        "stdw [%r10-8], 0\nlddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\ncall 2\nexit",
        Errno::EACCES,
        "invalid read from stack R3 off=-16 size=8",
    ),
    (
        "update with pointer flags",
        Mode::Raw,
        "stdw [%r10-8], 0\nstdw [%r10-16], 0\nlddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, %r10\ncall 2\nexit",
        Errno::EACCES,
        "R4 leaks addr into helper function",
    ),
    (
        "tail call with hash map",
        Mode::Raw,
        "lddw %r2, map_fd 0\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "cannot pass map_type 1 into func bpf_tail_call#12",
    ),
    (
        "prog_array to lookup",
        Mode::Raw,
        "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 2\ncall 1\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "cannot pass map_type 3 into func bpf_map_lookup_elem#1",
    ),
    (
        "tail call without ctx",
        Mode::Raw,
        "mov %r1, 0\nlddw %r2, map_fd 2\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 type=scalar expected=ctx",
    ),
    (
        "tail call with modified ctx",
        Mode::Raw,
        "add %r1, 8\nlddw %r2, map_fd 2\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
        Errno::EACCES,
        "dereference of modified ctx ptr R1 off=8 disallowed",
    ),
    (
        "sockmap lookup leaks its socket",
        Mode::Raw,
        concat!(lookup!("4"), "mov %r0, 0\nexit"),
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=5",
    ),
    (
        "kfunc not registered",
        Mode::Raw,
        "call kfunc 5\nexit",
        Errno::EINVAL,
        "kernel btf_id 5 is not a function",
    ),
    (
        "callx refused",
        Mode::Raw,
        "mov %r2, 7\ncall %r2\nexit",
        Errno::EINVAL,
        "unknown opcode 8d",
    ),
    // --- ALU
    (
        "shift by 64",
        Mode::Raw,
        "mov %r0, 1\nlsh %r0, 64\nexit",
        Errno::EINVAL,
        "invalid shift 64",
    ),
    (
        "shift32 by 32",
        Mode::Raw,
        "mov %r0, 1\nrsh32 %r0, 32\nexit",
        Errno::EINVAL,
        "invalid shift 32",
    ),
    (
        "div by zero imm",
        Mode::Raw,
        "mov %r0, 1\ndiv %r0, 0\nexit",
        Errno::EINVAL,
        "div by zero",
    ),
    (
        "mod by zero imm",
        Mode::Raw,
        "mov %r0, 1\nmod32 %r0, 0\nexit",
        Errno::EINVAL,
        "div by zero",
    ),
    // --- control flow
    (
        "unreachable insn",
        Mode::Raw,
        "mov %r0, 0\nexit\nmov %r0, 1\nexit",
        Errno::EINVAL,
        "unreachable insn 2",
    ),
    (
        "jump out of range",
        Mode::Raw,
        "ja +5\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "jump out of range from insn 0 to 6",
    ),
    (
        "jump backwards out",
        Mode::Raw,
        "ja -3\nexit",
        Errno::EINVAL,
        "jump out of range from insn 0 to -2",
    ),
    (
        "jump into ldimm64",
        Mode::Raw,
        "ja +1\nlddw %r0, 1\nexit",
        Errno::EINVAL,
        "jump into the middle of ldimm64 insn 2",
    ),
    (
        "falls off the end",
        Mode::Raw,
        "mov %r0, 0",
        Errno::EINVAL,
        "last insn is not an exit or jmp",
    ),
    (
        "ends in conditional",
        Mode::Raw,
        "mov %r0, 0\njeq %r0, 0, -2",
        Errno::EINVAL,
        "last insn is not an exit or jmp",
    ),
    (
        "back-edge without loops",
        Mode::NoLoops,
        "mov %r0, 0\nadd %r0, 1\njlt %r0, 4, -2\nexit",
        Errno::EINVAL,
        "back-edge from insn 2 to 1",
    ),
    (
        "infinite loop",
        Mode::Raw,
        "mov %r0, 0\nja -1",
        Errno::EINVAL,
        "infinite loop detected at insn 1",
    ),
    (
        "infinite loop unknown",
        Mode::Raw,
        "ldxdw %r0, [%r1]\nadd %r0, 1\njne %r0, 0, -2\nexit",
        Errno::EINVAL,
        "infinite loop detected",
    ),
    (
        "loop with a precise counter past the end",
        Mode::Priv,
        concat!(
            lookup!("1"),
            "jeq %r0, 0, +7\nmov %r1, 0\nmov %r2, %r0\nadd %r2, %r1\nstb [%r2+0], 1\n",
            "add %r1, 1\njlt %r1, 17, -5\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "invalid access to map value, value_size=16 off=16 size=1",
    ),
    (
        "loop too long",
        Mode::Raw,
        "mov %r0, 0\nadd %r0, 1\njne %r0, 0, -2\nexit",
        Errno::E2BIG,
        "BPF program is too large",
    ),
    (
        "uninit on one path",
        Mode::Raw,
        "ldxb %r2, [%r1]\njeq %r2, 0, +1\nmov %r0, 1\nexit",
        Errno::EACCES,
        "R0 !read_ok",
    ),
    (
        "dead branch not hiding bug",
        Mode::Raw,
        "mov %r2, 5\njgt %r2, 3, +1\nexit\nmov %r0, 0\nldxdw %r0, [%r10-8]\nexit",
        Errno::EACCES,
        "invalid read from stack",
    ),
    (
        "refined range still too big",
        Mode::Raw,
        concat!(
            "ldxb %r6, [%r1]\n",
            lookup!("0"),
            "jeq %r0, 0, +3\njgt %r6, 8, +2\nadd %r0, %r6\nldxb %r0, [%r0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "invalid access to map value, value_size=8 off=8 size=1",
    ),
    // --- BPF-to-BPF calls
    (
        "callee reads uninit r6",
        Mode::Raw,
        "mov %r6, 1\ncall local +1\nexit\nmov %r0, %r6\nexit",
        Errno::EACCES,
        "R6 !read_ok",
    ),
    (
        "caller reads clobbered r1",
        Mode::Raw,
        "call local +2\nmov %r0, %r1\nexit\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 !read_ok",
    ),
    (
        "callee returns its stack",
        Mode::Raw,
        "call local +1\nexit\nmov %r0, %r10\nexit",
        Errno::EINVAL,
        "cannot return stack pointer to the caller",
    ),
    (
        "call out of range",
        Mode::Raw,
        "call local +5\nexit",
        Errno::EINVAL,
        "function call to insn 6 is out of range",
    ),
    (
        "jump across subprograms",
        Mode::Raw,
        "call local +2\nja +2\nexit\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "jump out of range from insn 1 to 4",
    ),
    (
        "recursion too deep",
        Mode::Raw,
        "call local -1\nexit",
        Errno::E2BIG,
        "the call stack of 9 frames is too deep",
    ),
    (
        "combined stack too large",
        Mode::Raw,
        "stdw [%r10-512], 0\ncall local +2\nmov %r0, 0\nexit\nstdw [%r10-8], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "combined stack size of 2 calls is 544. Too large",
    ),
    // --- atomics
    (
        "atomic on ctx",
        Mode::Raw,
        "mov %r2, 1\nlock add [%r1+0], %r2\nmov %r0, 0\nexit",
        Errno::EACCES,
        "BPF_ATOMIC stores into R1 ctx is not allowed",
    ),
    (
        "atomic on uninit stack",
        Mode::Raw,
        "mov %r2, 1\nlock add [%r10-8], %r2\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid read from stack",
    ),
    (
        "atomic leaks pointer",
        Mode::Raw,
        "stdw [%r10-8], 0\nlock xchg [%r10-8], %r1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "R1 leaks addr into mem",
    ),
    // --- legacy and kernel-internal opcodes
    (
        "ld_abs in a type without an sk_buff",
        Mode::Raw,
        "ldabsb 12\nexit",
        Errno::EINVAL,
        "BPF_LD_[ABS|IND]",
    ),
    (
        "tail call opcode refused",
        Mode::Raw,
        "tail_call\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "unknown opcode f5",
    ),
];

/// (name, mode, program).
pub const POSITIVE: &[(&str, Mode, &str)] = &[
    (
        "null-checked lookup",
        Mode::Raw,
        concat!(lookup!("0"), "jeq %r0, 0, +1\nldxdw %r0, [%r0]\nexit"),
    ),
    (
        "null check via jne",
        Mode::Raw,
        concat!(
            lookup!("0"),
            "jne %r0, 0, +2\nmov %r0, 0\nexit\nldxdw %r0, [%r0+0]\nexit"
        ),
    ),
    (
        "bounded index into map value",
        Mode::Raw,
        concat!(
            "ldxb %r6, [%r1]\n",
            lookup!("0"),
            "jeq %r0, 0, +3\njgt %r6, 7, +2\nadd %r0, %r6\nldxb %r0, [%r0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "spill and fill a pointer",
        Mode::Raw,
        "stxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxb %r0, [%r2+3]\nexit",
    ),
    (
        "zeroed stack reads zero",
        Mode::Raw,
        "stdw [%r10-8], 0\nldxw %r0, [%r10-4]\nexit",
    ),
    (
        "bounded loop",
        Mode::Raw,
        "mov %r0, 0\nadd %r0, 1\njlt %r0, 100, -2\nexit",
    ),
    (
        "bpf2bpf call with stack arg",
        Mode::Raw,
        "stdw [%r10-8], 7\nmov %r1, %r10\nadd %r1, -8\ncall local +1\nexit\nldxdw %r0, [%r1]\nexit",
    ),
    (
        "tail call with prog_array",
        Mode::Raw,
        "lddw %r2, map_fd 2\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
    ),
    (
        "update from stack",
        Mode::Raw,
        "stdw [%r10-8], 0\nstdw [%r10-16], 0\nlddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\ncall 2\nexit",
    ),
    (
        "direct map value",
        Mode::Raw,
        "lddw %r1, map_value 1, 8\nldxdw %r0, [%r1+0]\nexit",
    ),
    ("skb len read", Mode::Skb, "ldxw %r0, [%r1+0]\nexit"),
    (
        "skb cb write",
        Mode::Skb,
        "stw [%r1+48], 1\nldxb %r0, [%r1+48]\nexit",
    ),
    (
        "tc mark write",
        Mode::Tc,
        "stw [%r1+8], 1\nmov %r0, 0\nexit",
    ),
    (
        "known branch prunes dead path",
        Mode::Raw,
        "mov %r2, 5\njgt %r2, 3, +1\nexit\nmov %r0, 0\nexit",
    ),
    (
        "privileged returns pointer",
        Mode::Priv,
        "mov %r0, %r1\nexit",
    ),
    (
        "privileged reads uninit stack",
        Mode::Priv,
        "ldxdw %r0, [%r10-8]\nexit",
    ),
    (
        "privileged pointer difference",
        Mode::Priv,
        "mov %r0, %r10\nsub %r0, %r1\nexit",
    ),
    (
        "atomic on stack",
        Mode::Raw,
        "stdw [%r10-8], 0\nmov %r2, 1\nlock fetch add [%r10-8], %r2\nmov %r0, %r2\nexit",
    ),
    (
        "may_goto loop",
        Mode::Raw,
        "mov %r0, 0\nmay_goto +2\nadd %r0, 0\nja -3\nexit",
    ),
    (
        "may_goto loop with an imprecise counter",
        Mode::Raw,
        "mov %r0, 0\nmay_goto +2\nadd %r0, 1\nja -3\nexit",
    ),
    (
        "loop with a precise counter",
        Mode::Priv,
        concat!(
            lookup!("1"),
            "jeq %r0, 0, +7\nmov %r1, 0\nmov %r2, %r0\nadd %r2, %r1\nstb [%r2+0], 1\n",
            "add %r1, 1\njlt %r1, 16, -5\nmov %r0, 0\nexit"
        ),
    ),
];

#[macro_use]
pub mod classes;
pub mod refs;

/// Runs every negative case through `run` and lists those that were accepted or rejected
/// with another errno or without the log fragment.
pub fn negative_failures<M: Copy, T>(
    cases: &[(&str, M, &str, Errno, &str)],
    run: impl Fn(M, &str) -> Result<T, kbpf::verifier::VerifyError>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for &(name, mode, asm, errno, frag) in cases {
        match run(mode, asm) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) if e.errno != errno || !e.log.contains(frag) => {
                failures.push(format!("{name}: want {errno:?} '{frag}', got {e}"))
            }
            Err(_) => {}
        }
    }
    failures
}

/// Runs every positive control through `run` and lists those that were rejected.
pub fn positive_failures<M: Copy, T>(
    cases: &[(&str, M, &str)],
    run: impl Fn(M, &str) -> Result<T, kbpf::verifier::VerifyError>,
) -> Vec<String> {
    cases
        .iter()
        .filter_map(|&(name, mode, asm)| run(mode, asm).err().map(|e| format!("{name}: {e}")))
        .collect()
}
