//! Instruction builders, after the kernel's `BPF_MOV64_IMM`, `BPF_LDX_MEM`, ... macros
//! (`include/linux/filter.h`). Operation arguments take the `uapi` constants (`alu::ADD`,
//! `jmp::JEQ`, ...).

use super::{Insn, Size};
use crate::uapi::{alu, atomic, class, jmp, mode, pseudo, size, src};

/// `dst = dst op imm` (64-bit).
pub const fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(class::ALU64 | op | src::K, dst, 0, 0, imm)
}

/// `dst = dst op src` (64-bit).
pub const fn alu64_reg(op: u8, dst: u8, src_reg: u8) -> Insn {
    Insn::new(class::ALU64 | op | src::X, dst, src_reg, 0, 0)
}

/// `dst = (u32)(dst op imm)`.
pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(class::ALU | op | src::K, dst, 0, 0, imm)
}

/// `dst = (u32)(dst op src)`.
pub const fn alu32_reg(op: u8, dst: u8, src_reg: u8) -> Insn {
    Insn::new(class::ALU | op | src::X, dst, src_reg, 0, 0)
}

/// `dst = imm` (sign-extended to 64 bits).
pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
    alu64_imm(alu::MOV, dst, imm)
}

/// `dst = src`.
pub const fn mov64_reg(dst: u8, src_reg: u8) -> Insn {
    alu64_reg(alu::MOV, dst, src_reg)
}

/// `dst = (u32)imm`.
pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
    alu32_imm(alu::MOV, dst, imm)
}

/// `dst = (u32)src`.
pub const fn mov32_reg(dst: u8, src_reg: u8) -> Insn {
    alu32_reg(alu::MOV, dst, src_reg)
}

/// `dst = imm64`, two slots.
pub const fn ld_imm64(dst: u8, imm: u64) -> [Insn; 2] {
    ld_imm64_raw(dst, 0, imm)
}

/// `ld_imm64` with a pseudo source (`uapi::pseudo`), two slots.
pub const fn ld_imm64_raw(dst: u8, pseudo_src: u8, imm: u64) -> [Insn; 2] {
    [
        Insn::new(
            class::LD | mode::IMM | size::DW,
            dst,
            pseudo_src,
            0,
            imm as u32 as i32,
        ),
        Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}

/// `dst = map` (`BPF_LD_MAP_FD`): `fd` is the map's handle.
pub const fn ld_map_fd(dst: u8, fd: u32) -> [Insn; 2] {
    ld_imm64_raw(dst, pseudo::MAP_FD, fd as u64)
}

/// `dst = *(size *)(src + off)`.
pub const fn ldx_mem(sz: Size, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::LDX | mode::MEM | sz.code(), dst, src_reg, off, 0)
}

/// `dst = *(signed size *)(src + off)`, sign-extended.
pub const fn ldx_memsx(sz: Size, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::LDX | mode::MEMSX | sz.code(), dst, src_reg, off, 0)
}

/// `*(size *)(dst + off) = src`.
pub const fn stx_mem(sz: Size, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::STX | mode::MEM | sz.code(), dst, src_reg, off, 0)
}

/// `*(size *)(dst + off) = imm`.
pub const fn st_mem(sz: Size, dst: u8, off: i16, imm: i32) -> Insn {
    Insn::new(class::ST | mode::MEM | sz.code(), dst, 0, off, imm)
}

/// An atomic operation (`uapi::atomic` code in `op`) on `*(size *)(dst + off)`.
pub const fn atomic_op(sz: Size, op: i32, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::STX | mode::ATOMIC | sz.code(), dst, src_reg, off, op)
}

/// `lock *(size *)(dst + off) += src`.
pub const fn atomic_add(sz: Size, dst: u8, src_reg: u8, off: i16) -> Insn {
    atomic_op(sz, atomic::ADD, dst, src_reg, off)
}

/// `if dst op imm goto pc + 1 + off` (64-bit compare).
pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(class::JMP | op | src::K, dst, 0, off, imm)
}

/// `if dst op src goto pc + 1 + off` (64-bit compare).
pub const fn jmp_reg(op: u8, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::JMP | op | src::X, dst, src_reg, off, 0)
}

/// `if (u32)dst op imm goto pc + 1 + off`.
pub const fn jmp32_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(class::JMP32 | op | src::K, dst, 0, off, imm)
}

/// `if (u32)dst op (u32)src goto pc + 1 + off`.
pub const fn jmp32_reg(op: u8, dst: u8, src_reg: u8, off: i16) -> Insn {
    Insn::new(class::JMP32 | op | src::X, dst, src_reg, off, 0)
}

/// `goto pc + 1 + off`.
pub const fn ja(off: i16) -> Insn {
    Insn::new(class::JMP | jmp::JA, 0, 0, off, 0)
}

/// `goto pc + 1 + off` with a 32-bit distance (`ja32`, ISA v4).
pub const fn ja32(off: i32) -> Insn {
    Insn::new(class::JMP32 | jmp::JA, 0, 0, 0, off)
}

/// `call helper` by id.
pub const fn call_helper(id: i32) -> Insn {
    Insn::new(class::JMP | jmp::CALL, 0, 0, 0, id)
}

/// BPF-to-BPF call to `pc + 1 + imm`.
pub const fn call_local(imm: i32) -> Insn {
    Insn::new(class::JMP | jmp::CALL, 0, pseudo::CALL, 0, imm)
}

/// `callx dst`: call the helper whose id is in `reg`.
pub const fn callx(reg: u8) -> Insn {
    Insn::new(class::JMP | jmp::CALL | src::X, reg, 0, 0, 0)
}

/// `call bpf_tail_call` (helper 12): `r1` = ctx, `r2` = prog_array, `r3` = index.
pub const fn tail_call() -> Insn {
    call_helper(crate::uapi::func::TAIL_CALL)
}

/// `exit`.
pub const fn exit() -> Insn {
    Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0)
}
