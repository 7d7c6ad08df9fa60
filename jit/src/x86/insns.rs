//! Typed x86-64 instructions: one method per instruction form the JIT emits, each delegating
//! operand encoding to [`Asm::op_modrm`](super::encode::Asm::op_modrm).
//!
//! Mirrors the `EMIT*` uses in Linux `arch/x86/net/bpf_jit_comp.c` (`emit_mov_imm32`,
//! `emit_mov_imm64`, `emit_mov_reg`, `emit_ldx`, `emit_stx`, `emit_atomic`, `emit_jump`…),
//! with immediate-size selection (imm8 vs imm32) made here.

use super::encode::{Asm, Enc, RegField, Rm, is_imm8};
use super::reg::{Cc, Mem, Reg, Width};

/// The classic two-operand ALU group (`/digit` of `81`/`83`, and `digit*8 + 1` for r/m,reg).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum AluKind {
    Add = 0,
    Or = 1,
    And = 4,
    Sub = 5,
    Xor = 6,
    Cmp = 7,
}

/// Shift and rotate group (`/digit` of `C1`/`D3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum ShiftKind {
    Rol = 0,
    Ror = 1,
    Shl = 4,
    Shr = 5,
    Sar = 7,
}

use RegField::{Ext, Reg as R};

impl Asm {
    /// `mov dst, src` (register to register, 32- or 64-bit).
    pub fn mov_rr(&mut self, w: Width, dst: Reg, src: Reg) {
        self.op_modrm(false, w, &[0x89], R(src), Rm::Reg(dst));
    }

    /// `mov r32, imm32` (zero-extends into the 64-bit register).
    pub fn mov_ri32(&mut self, dst: Reg, imm: u32) {
        self.rex(false, false, false, dst.is_ext(), false);
        self.byte(0xb8 + dst.low3());
        self.imm32(imm as i32);
    }

    /// `mov r64, simm32` (sign-extended).
    pub fn mov_ri_sx(&mut self, dst: Reg, imm: i32) {
        self.op_modrm(false, Width::Q, &[0xc7], Ext(0), Rm::Reg(dst));
        self.imm32(imm);
    }

    /// `movabs r64, imm64`.
    pub fn movabs(&mut self, dst: Reg, imm: u64) {
        self.rex(true, false, false, dst.is_ext(), false);
        self.byte(0xb8 + dst.low3());
        self.imm64(imm);
    }

    /// The shortest sequence setting all 64 bits of `dst` to `v` (`xor`, `mov r32`, sign-extended
    /// `mov r64` or `movabs`), like the kernel's `emit_mov_imm64`.
    pub fn mov_imm64(&mut self, dst: Reg, v: u64) {
        if v == 0 {
            self.alu_rr(AluKind::Xor, Width::W, dst, dst);
        } else if v <= u32::MAX as u64 {
            self.mov_ri32(dst, v as u32);
        } else if v as i64 >= i32::MIN as i64 && v as i64 <= i32::MAX as i64 {
            self.mov_ri_sx(dst, v as i32);
        } else {
            self.movabs(dst, v);
        }
    }

    /// `op dst, src` for the ALU group.
    pub fn alu_rr(&mut self, op: AluKind, w: Width, dst: Reg, src: Reg) {
        self.op_modrm(false, w, &[(op as u8) << 3 | 1], R(src), Rm::Reg(dst));
    }

    /// `op [mem], src` for the ALU group (e.g. `cmp dword [rsi], r11d`).
    pub fn alu_mr(&mut self, op: AluKind, w: Width, mem: Mem, src: Reg) {
        self.op_modrm(false, w, &[(op as u8) << 3 | 1], R(src), Rm::Mem(mem));
    }

    /// `op r/m, imm` for the ALU group, choosing the sign-extended imm8 form when it fits.
    pub fn alu_ri(&mut self, op: AluKind, w: Width, dst: Rm, imm: i32) {
        if is_imm8(imm as i64) {
            self.op_modrm(false, w, &[0x83], Ext(op as u8), dst);
            self.byte(imm as i8 as u8);
        } else {
            self.op_modrm(false, w, &[0x81], Ext(op as u8), dst);
            self.imm32(imm);
        }
    }

    /// `adc r, simm8` (add with carry).
    pub fn adc_ri(&mut self, w: Width, r: Reg, imm: i8) {
        self.op_modrm(false, w, &[0x83], Ext(2), Rm::Reg(r));
        self.byte(imm as u8);
    }

    /// `lock op [mem], src` (atomic add/or/and/xor without fetch).
    pub fn lock_alu_mr(&mut self, op: AluKind, w: Width, mem: Mem, src: Reg) {
        self.op_modrm(true, w, &[(op as u8) << 3 | 1], R(src), Rm::Mem(mem));
    }

    /// `test a, b`.
    pub fn test_rr(&mut self, w: Width, a: Reg, b: Reg) {
        self.op_modrm(false, w, &[0x85], R(b), Rm::Reg(a));
    }

    /// `test r, imm32` (sign-extended for 64-bit).
    pub fn test_ri(&mut self, w: Width, a: Reg, imm: i32) {
        self.op_modrm(false, w, &[0xf7], Ext(0), Rm::Reg(a));
        self.imm32(imm);
    }

    /// `shift r, imm8` (`D1` form for a count of 1).
    pub fn shift_ri(&mut self, kind: ShiftKind, w: Width, r: Reg, n: u8) {
        if n == 1 {
            self.op_modrm(false, w, &[0xd1], Ext(kind as u8), Rm::Reg(r));
        } else {
            self.op_modrm(false, w, &[0xc1], Ext(kind as u8), Rm::Reg(r));
            self.byte(n);
        }
    }

    /// `shift r, cl`.
    pub fn shift_cl(&mut self, kind: ShiftKind, w: Width, r: Reg) {
        self.op_modrm(false, w, &[0xd3], Ext(kind as u8), Rm::Reg(r));
    }

    /// `imul dst, src`.
    pub fn imul_rr(&mut self, w: Width, dst: Reg, src: Reg) {
        self.op_modrm(false, w, &[0x0f, 0xaf], R(dst), Rm::Reg(src));
    }

    /// `imul dst, src, imm` (imm8 form when it fits).
    pub fn imul_rri(&mut self, w: Width, dst: Reg, src: Reg, imm: i32) {
        if is_imm8(imm as i64) {
            self.op_modrm(false, w, &[0x6b], R(dst), Rm::Reg(src));
            self.byte(imm as i8 as u8);
        } else {
            self.op_modrm(false, w, &[0x69], R(dst), Rm::Reg(src));
            self.imm32(imm);
        }
    }

    /// `neg r`.
    pub fn neg(&mut self, w: Width, r: Reg) {
        self.op_modrm(false, w, &[0xf7], Ext(3), Rm::Reg(r));
    }

    /// `div r` (unsigned) or `idiv r` (signed): rdx:rax / r.
    pub fn div(&mut self, w: Width, signed: bool, r: Reg) {
        self.op_modrm(
            false,
            w,
            &[0xf7],
            Ext(if signed { 7 } else { 6 }),
            Rm::Reg(r),
        );
    }

    /// `cqo` (64-bit) or `cdq` (32-bit): sign-extend rax into rdx.
    pub fn cqo(&mut self, w: Width) {
        if w == Width::Q {
            self.byte(0x48);
        }
        self.byte(0x99);
    }

    /// `movzx r32, r/m8|16` (`from` is B or H) or `mov r32, r/m32` (W) or `mov r64, r/m64` (Q).
    pub fn load_zx(&mut self, from: Width, dst: Reg, src: Rm) {
        let enc = Enc {
            byte_rm: from == Width::B,
            w: from == Width::Q,
            ..Enc::default()
        };
        let op: &[u8] = match from {
            Width::B => &[0x0f, 0xb6],
            Width::H => &[0x0f, 0xb7],
            Width::W | Width::Q => &[0x8b],
        };
        self.op_enc(enc, op, R(dst), src);
    }

    /// `movsx r64|r32, r/m8|16` or `movsxd r64, r/m32` (`from` is B, H or W).
    pub fn load_sx(&mut self, to: Width, from: Width, dst: Reg, src: Rm) {
        let enc = Enc {
            byte_rm: from == Width::B,
            w: to == Width::Q,
            ..Enc::default()
        };
        let op: &[u8] = match from {
            Width::B => &[0x0f, 0xbe],
            Width::H => &[0x0f, 0xbf],
            _ => &[0x63],
        };
        self.op_enc(enc, op, R(dst), src);
    }

    /// `mov [mem], src` of the given width.
    pub fn store(&mut self, w: Width, mem: Mem, src: Reg) {
        let op = if w == Width::B { 0x88 } else { 0x89 };
        self.op_modrm(false, w, &[op], R(src), Rm::Mem(mem));
    }

    /// `mov r/m, imm` of the given width (64-bit: sign-extended imm32).
    pub fn store_imm(&mut self, w: Width, dst: Rm, imm: i32) {
        match w {
            Width::B => {
                self.op_modrm(false, w, &[0xc6], Ext(0), dst);
                self.byte(imm as u8);
            }
            Width::H => {
                self.op_modrm(false, w, &[0xc7], Ext(0), dst);
                self.imm16(imm as u16);
            }
            _ => {
                self.op_modrm(false, w, &[0xc7], Ext(0), dst);
                self.imm32(imm);
            }
        }
    }

    /// `lea dst, [mem]`.
    pub fn lea(&mut self, dst: Reg, mem: Mem) {
        self.op_modrm(false, Width::Q, &[0x8d], R(dst), Rm::Mem(mem));
    }

    /// `lock xadd [mem], src`.
    pub fn lock_xadd(&mut self, w: Width, mem: Mem, src: Reg) {
        self.op_modrm(true, w, &[0x0f, 0xc1], R(src), Rm::Mem(mem));
    }

    /// `xchg [mem], src` (implicitly locked).
    pub fn xchg_mr(&mut self, w: Width, mem: Mem, src: Reg) {
        self.op_modrm(false, w, &[0x87], R(src), Rm::Mem(mem));
    }

    /// `lock cmpxchg [mem], src` (compares with rax/eax).
    pub fn lock_cmpxchg(&mut self, w: Width, mem: Mem, src: Reg) {
        self.op_modrm(true, w, &[0x0f, 0xb1], R(src), Rm::Mem(mem));
    }

    /// `bswap r32|r64`.
    pub fn bswap(&mut self, w: Width, r: Reg) {
        self.rex(w == Width::Q, false, false, r.is_ext(), false);
        self.bytes(&[0x0f, 0xc8 + r.low3()]);
    }

    /// `push r64`.
    pub fn push(&mut self, r: Reg) {
        self.rex(false, false, false, r.is_ext(), false);
        self.byte(0x50 + r.low3());
    }

    /// `pop r64`.
    pub fn pop(&mut self, r: Reg) {
        self.rex(false, false, false, r.is_ext(), false);
        self.byte(0x58 + r.low3());
    }

    /// `push simm32` (sign-extended to 64 bits).
    pub fn push_imm32(&mut self, imm: i32) {
        self.byte(0x68);
        self.imm32(imm);
    }

    /// `call r64`.
    pub fn call_r(&mut self, r: Reg) {
        self.op_modrm(false, Width::W, &[0xff], Ext(2), Rm::Reg(r));
    }

    /// `jmp r64` (indirect).
    pub fn jmp_r(&mut self, r: Reg) {
        self.op_modrm(false, Width::W, &[0xff], Ext(4), Rm::Reg(r));
    }

    /// `call rel32` (relative to the end of the instruction).
    pub fn call_rel32(&mut self, rel: i32) {
        self.byte(0xe8);
        self.imm32(rel);
    }

    /// `jmp rel8`.
    pub fn jmp_rel8(&mut self, rel: i8) {
        self.bytes(&[0xeb, rel as u8]);
    }

    /// `jmp rel32`.
    pub fn jmp_rel32(&mut self, rel: i32) {
        self.byte(0xe9);
        self.imm32(rel);
    }

    /// `jcc rel8`.
    pub fn jcc_rel8(&mut self, cc: Cc, rel: i8) {
        self.bytes(&[0x70 | cc as u8, rel as u8]);
    }

    /// `jcc rel32`.
    pub fn jcc_rel32(&mut self, cc: Cc, rel: i32) {
        self.bytes(&[0x0f, 0x80 | cc as u8]);
        self.imm32(rel);
    }

    /// `ret`.
    pub fn ret(&mut self) {
        self.byte(0xc3);
    }

    /// `leave` (`mov rsp, rbp; pop rbp`).
    pub fn leave(&mut self) {
        self.byte(0xc9);
    }

    /// The 5-byte NOP `nopl 0x0(%rax,%rax,1)` (`x86_nops[5]`), a patch site.
    pub fn nop5(&mut self) {
        self.bytes(&[0x0f, 0x1f, 0x44, 0x00, 0x00]);
    }

    /// Pads with the recommended multi-byte NOPs (Intel SDM vol. 2B, "NOP") until the length is
    /// a multiple of `align` (a power of two), using as few instructions as it can.
    pub fn align_with_nops(&mut self, align: usize) {
        self.nops(self.len().wrapping_neg() & (align - 1));
    }

    /// `pad` bytes of the recommended multi-byte NOPs, in as few instructions as it can.
    pub fn nops(&mut self, mut pad: usize) {
        const NOPS: [&[u8]; 9] = [
            &[0x90],
            &[0x66, 0x90],
            &[0x0f, 0x1f, 0x00],
            &[0x0f, 0x1f, 0x40, 0x00],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
            &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        ];
        while pad > 0 {
            let n = pad.min(NOPS.len());
            self.bytes(NOPS[n - 1]);
            pad -= n;
        }
    }

    /// `int3`.
    pub fn int3(&mut self) {
        self.byte(0xcc);
    }
}
