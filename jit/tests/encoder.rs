//! Golden tests for the x86-64 encoder: each instruction's bytes are decoded by iced-x86 and
//! must give exactly one instruction with the expected Intel text, consuming every byte. The
//! awkward cases are the point: rbp/r13 bases (forced disp8), rsp/r12 bases (forced SIB),
//! REX for sil/dil byte registers, imm8 vs imm32, rel8 vs rel32.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use kbpf_jit::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, ShiftKind, Width};

fn text(f: impl FnOnce(&mut Asm)) -> String {
    let mut a = Asm::new();
    f(&mut a);
    let mut d = Decoder::with_ip(64, &a.buf, 0x1000, DecoderOptions::NONE);
    let insn = d.decode();
    assert!(!insn.is_invalid(), "invalid encoding {:02x?}", a.buf);
    assert_eq!(insn.len(), a.buf.len(), "trailing bytes in {:02x?}", a.buf);
    let mut out = String::new();
    IntelFormatter::new().format(&insn, &mut out);
    out
}

#[test]
fn base_registers_that_need_disp_or_sib() {
    assert_eq!(
        text(|a| a.load_zx(Width::Q, Reg::Rax, Rm::Mem(Mem::base(Reg::Rbp, 0)))),
        "mov rax,[rbp]"
    );
    assert_eq!(
        text(|a| a.load_zx(Width::Q, Reg::Rax, Rm::Mem(Mem::base(Reg::R13, 0)))),
        "mov rax,[r13]"
    );
    assert_eq!(
        text(|a| a.load_zx(Width::Q, Reg::Rax, Rm::Mem(Mem::base(Reg::Rsp, 0)))),
        "mov rax,[rsp]"
    );
    assert_eq!(
        text(|a| a.load_zx(Width::Q, Reg::R9, Rm::Mem(Mem::base(Reg::R12, 8)))),
        "mov r9,[r12+8]"
    );
    assert_eq!(
        text(|a| a.store(Width::Q, Mem::base(Reg::Rbp, -528), Reg::Rax)),
        "mov [rbp-210h],rax"
    );
    assert_eq!(
        text(|a| a.store(Width::W, Mem::base(Reg::R13, -128), Reg::R15)),
        "mov [r13-80h],r15d"
    );
    assert_eq!(
        text(|a| a.lea(Reg::Rsp, Mem::base(Reg::Rbp, -576))),
        "lea rsp,[rbp-240h]"
    );
    assert_eq!(
        text(|a| a.load_zx(
            Width::Q,
            Reg::Rcx,
            Rm::Mem(Mem::index(Reg::Rsi, Reg::Rdx, 8, 0x10))
        )),
        "mov rcx,[rsi+rdx*8+10h]"
    );
    assert_eq!(
        text(|a| a.load_zx(
            Width::Q,
            Reg::Rax,
            Rm::Mem(Mem::index(Reg::R13, Reg::R9, 4, 0))
        )),
        "mov rax,[r13+r9*4]"
    );
}

#[test]
fn byte_registers_need_rex() {
    assert_eq!(
        text(|a| a.store(Width::B, Mem::base(Reg::Rdi, 3), Reg::Rsi)),
        "mov [rdi+3],sil"
    );
    assert_eq!(
        text(|a| a.store(Width::B, Mem::base(Reg::Rax, 0), Reg::Rdi)),
        "mov [rax],dil"
    );
    assert_eq!(
        text(|a| a.store(Width::B, Mem::base(Reg::Rax, 0), Reg::Rbx)),
        "mov [rax],bl"
    );
    assert_eq!(
        text(|a| a.load_sx(Width::Q, Width::B, Reg::Rax, Rm::Reg(Reg::Rsi))),
        "movsx rax,sil"
    );
    assert_eq!(
        text(|a| a.load_sx(Width::W, Width::B, Reg::Rcx, Rm::Reg(Reg::Rdi))),
        "movsx ecx,dil"
    );
    assert_eq!(
        text(|a| a.load_sx(Width::W, Width::H, Reg::R8, Rm::Reg(Reg::Rbx))),
        "movsx r8d,bx"
    );
    assert_eq!(
        text(|a| a.load_sx(Width::Q, Width::W, Reg::R15, Rm::Reg(Reg::Rdx))),
        "movsxd r15,edx"
    );
    assert_eq!(
        text(|a| a.load_zx(Width::B, Reg::Rax, Rm::Mem(Mem::base(Reg::R14, 1)))),
        "movzx eax,byte ptr [r14+1]"
    );
    assert_eq!(
        text(|a| a.load_zx(Width::H, Reg::Rsi, Rm::Reg(Reg::Rsi))),
        "movzx esi,si"
    );
}

#[test]
fn immediate_sizes() {
    assert_eq!(
        text(|a| a.alu_ri(AluKind::Add, Width::Q, Rm::Reg(Reg::Rdi), 127)),
        "add rdi,7Fh"
    );
    assert_eq!(
        text(|a| a.alu_ri(AluKind::Add, Width::Q, Rm::Reg(Reg::Rdi), 128)),
        "add rdi,80h"
    );
    assert_eq!(
        text(|a| a.alu_ri(AluKind::Sub, Width::W, Rm::Reg(Reg::R8), -128)),
        "sub r8d,0FFFFFF80h"
    );
    assert_eq!(
        text(|a| a.alu_ri(AluKind::Cmp, Width::Q, Rm::Reg(Reg::R11), -1)),
        "cmp r11,0FFFFFFFFFFFFFFFFh"
    );
    assert_eq!(
        text(|a| a.imul_rri(Width::Q, Reg::Rbx, Reg::Rdi, 3)),
        "imul rbx,rdi,3"
    );
    assert_eq!(
        text(|a| a.imul_rri(Width::W, Reg::R13, Reg::R8, 0x1234)),
        "imul r13d,r8d,1234h"
    );
    assert_eq!(
        text(|a| a.mov_ri32(Reg::R9, 0xdead_beef)),
        "mov r9d,0DEADBEEFh"
    );
    assert_eq!(
        text(|a| a.mov_ri_sx(Reg::Rax, -2)),
        "mov rax,0FFFFFFFFFFFFFFFEh"
    );
    assert_eq!(
        text(|a| a.movabs(Reg::R15, 0x1122_3344_5566_7788)),
        "mov r15,1122334455667788h"
    );
    assert_eq!(
        text(|a| a.store_imm(Width::H, Rm::Mem(Mem::base(Reg::Rbp, -2)), 0x1_2345)),
        "mov word ptr [rbp-2],2345h"
    );
    assert_eq!(
        text(|a| a.store_imm(Width::Q, Rm::Mem(Mem::base(Reg::R12, 0)), -1)),
        "mov qword ptr [r12],0FFFFFFFFFFFFFFFFh"
    );
    assert_eq!(
        text(|a| a.shift_ri(ShiftKind::Sar, Width::Q, Reg::R14, 1)),
        "sar r14,1"
    );
    assert_eq!(
        text(|a| a.shift_ri(ShiftKind::Ror, Width::H, Reg::Rcx, 8)),
        "ror cx,8"
    );
    assert_eq!(
        text(|a| a.shift_cl(ShiftKind::Shl, Width::W, Reg::R11)),
        "shl r11d,cl"
    );
    assert_eq!(
        text(|a| a.test_ri(Width::Q, Reg::Rsi, -16)),
        "test rsi,0FFFFFFFFFFFFFFF0h"
    );
    assert_eq!(text(|a| a.push_imm32(0x1000)), "push 1000h");
}

#[test]
fn jumps_and_calls() {
    assert_eq!(text(|a| a.jmp_rel8(-2)), "jmp short 0000000000001000h");
    assert_eq!(text(|a| a.jmp_rel32(0x100)), "jmp 0000000000001105h");
    assert_eq!(
        text(|a| a.jcc_rel8(Cc::Be, 0x10)),
        "jbe short 0000000000001012h"
    );
    assert_eq!(text(|a| a.jcc_rel32(Cc::G, -6)), "jg 0000000000001000h");
    assert_eq!(text(|a| a.call_rel32(0)), "call 0000000000001005h");
    assert_eq!(text(|a| a.call_r(Reg::R11)), "call r11");
    assert_eq!(text(|a| a.call_r(Reg::Rax)), "call rax");
}

#[test]
fn atomics_and_misc() {
    assert_eq!(
        text(|a| a.lock_alu_mr(AluKind::Xor, Width::W, Mem::base(Reg::Rbp, -4), Reg::Rsi)),
        "lock xor [rbp-4],esi"
    );
    assert_eq!(
        text(|a| a.lock_xadd(Width::Q, Mem::base(Reg::R13, 8), Reg::Rcx)),
        "lock xadd [r13+8],rcx"
    );
    assert_eq!(
        text(|a| a.xchg_mr(Width::W, Mem::base(Reg::Rsp, 0), Reg::R8)),
        "xchg [rsp],r8d"
    );
    assert_eq!(
        text(|a| a.lock_cmpxchg(Width::Q, Mem::base(Reg::R10, 0), Reg::R11)),
        "lock cmpxchg [r10],r11"
    );
    assert_eq!(text(|a| a.bswap(Width::Q, Reg::R13)), "bswap r13");
    assert_eq!(text(|a| a.bswap(Width::W, Reg::Rdx)), "bswap edx");
    assert_eq!(text(|a| a.div(Width::Q, true, Reg::R11)), "idiv r11");
    assert_eq!(text(|a| a.div(Width::W, false, Reg::R11)), "div r11d");
    assert_eq!(text(|a| a.cqo(Width::Q)), "cqo");
    assert_eq!(text(|a| a.cqo(Width::W)), "cdq");
    assert_eq!(text(|a| a.push(Reg::R12)), "push r12");
    assert_eq!(text(|a| a.pop(Reg::Rbx)), "pop rbx");
    assert_eq!(text(|a| a.nop5()), "nop [rax+rax]");
    assert_eq!(
        text(|a| a.mov_rr(Width::Q, Reg::Rbp, Reg::Rsp)),
        "mov rbp,rsp"
    );
    assert_eq!(
        text(|a| a.mov_rr(Width::W, Reg::Rax, Reg::Rax)),
        "mov eax,eax"
    );
    assert_eq!(text(|a| a.adc_ri(Width::Q, Reg::R11, 0)), "adc r11,0");
}

#[test]
fn nop_padding_decodes_as_nops_to_the_boundary() {
    for start in 0..16 {
        let mut a = kbpf_jit::x86::Asm::new();
        for _ in 0..start {
            a.int3();
        }
        a.align_with_nops(16);
        assert_eq!(a.len() % 16, 0, "start {start}");
        let mut d = iced_x86::Decoder::with_ip(64, &a.buf[start..], 0, 0);
        while d.can_decode() {
            let i = d.decode();
            assert_eq!(i.mnemonic(), iced_x86::Mnemonic::Nop, "start {start}");
        }
    }
}
