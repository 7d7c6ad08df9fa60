//! Code-generation properties: error cases, prologue layout, long/short jump convergence,
//! BPF-to-BPF calls with unwinding, may_goto.

use kbpf::Errno;
use kbpf::insn::*;
use kbpf::uapi::{ProgType, alu};

mod support;

fn run(insns: &[Insn], r1: u64) -> u64 {
    support::install();
    let image = kbpf_jit::compile(insns, ProgType::RawBuffer).expect("compile");
    // SAFETY: the test programs touch only their own stack.
    unsafe { image.run(r1, 0, &mut 0) }
}

#[test]
fn rejects_what_it_cannot_compile() {
    // The raw helper call the load path rewrites into the tail-call opcode has no function to
    // call.
    let p = [tail_call(), mov64_imm(0, 0), exit()];
    assert_eq!(
        kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap_err(),
        Errno::EINVAL
    );
    // Recursion: the main program calls itself.
    let p = [call_local(-1), exit()];
    assert_eq!(
        kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap_err(),
        Errno::EINVAL
    );
    // A jump from the main program into a subprogram.
    let p = [ja(2), call_local(1), exit(), mov64_imm(0, 1), exit()];
    assert_eq!(
        kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap_err(),
        Errno::EINVAL
    );
    // Helper 99 does not exist.
    let p = [call_helper(99), exit()];
    assert_eq!(
        kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        kbpf_jit::emit(&[], ProgType::RawBuffer).unwrap_err(),
        Errno::EINVAL
    );
}

/// A chain of `frames` functions, each adding its depth to R0: main → f1 → … → f(frames-1).
fn chain(frames: usize) -> Vec<Insn> {
    let mut p = vec![mov64_imm(0, 0)];
    for k in 0..frames {
        p.push(alu64_imm(alu::ADD, 0, k as i32 + 1));
        if k + 1 < frames {
            p.push(call_local(1));
        }
        p.push(exit());
    }
    p
}

#[test]
fn call_depth_is_limited_to_eight_frames() {
    assert_eq!(run(&chain(8), 0), (1..=8).sum::<u64>());
    assert_eq!(
        kbpf_jit::emit(&chain(9), ProgType::RawBuffer).unwrap_err(),
        Errno::E2BIG
    );
}

#[test]
fn tail_calls_land_on_the_first_body_instruction() {
    let (code, offsets) = kbpf_jit::emit(&[mov64_imm(0, 3), exit()], ProgType::RawBuffer).unwrap();
    // nop5 alone: no frame (no R10, no call), no saved registers (see `frame`: the caller of
    // JIT'd code saves them); then `xor eax, eax` (R0 is named).
    assert_eq!(&code[..7], &[0x0f, 0x1f, 0x44, 0, 0, 0x31, 0xc0]);
    assert_eq!(offsets.len(), 2);
    // A program that makes tail calls has the full prologue: tail calls into it and from it
    // land on its first body instruction, TAIL_CALL_OFFSET bytes in.
    let tail = [
        mov64_imm(0, 5),
        Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0),
        exit(),
    ];
    let (code2, offsets2) = kbpf_jit::emit(&tail, ProgType::RawBuffer).unwrap();
    assert_eq!(offsets2[0] as usize, kbpf_jit::TAIL_CALL_OFFSET);
    // nop5; push rbp; mov rbp, rsp; sub rsp, 528
    assert_eq!(
        &code2[..16],
        &[
            0x0f, 0x1f, 0x44, 0, 0, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x81, 0xec, 0x10, 0x02, 0, 0
        ]
    );
    // One that makes none skips what it can't observe (the frame, the counter pointer, the
    // bottom frame, the may_goto budget, zeroing registers it never names): its body starts
    // earlier, after the same patch site.
    assert!((offsets[0] as usize) < kbpf_jit::TAIL_CALL_OFFSET);
    assert_eq!(code[..5], code2[..5]);
    assert_eq!(run(&[mov64_imm(0, 3), exit()], 0), 3);
    assert_eq!(run(&chain(3), 0), 6);
}

#[test]
fn tail_call_without_maps_falls_through() {
    // No map is referenced, so R2 can't be a prog_array: the interpreter falls through, and the
    // JIT emits only what every tail call ends with — R2 reloaded with the run's entry R2
    // (two loads, 4 + 4 bytes: `mov rsi, [r12-528]` needs a SIB byte and disp32).
    let p = [
        mov64_imm(0, 5),
        Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0),
        exit(),
    ];
    let (with, wo) = kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap();
    let (without, o) = kbpf_jit::emit(&[p[0], p[2]], ProgType::RawBuffer).unwrap();
    let (with, without) = (&with[wo[0] as usize..], &without[o[0] as usize..]);
    assert!(with.len() > without.len() && with.len() <= without.len() + 16);
    assert_eq!(run(&p, 0), 5);
}

/// `if r1 == 0 goto skip; <filler>; r0 = 2; exit; skip: r0 = 1; exit` with `filler` 64-bit
/// immediate loads in between, so the jump is long or short depending on `filler`.
fn jump_over(filler: usize) -> Vec<Insn> {
    let mut p = vec![jmp_imm(0x10, 1, 0, (filler * 2 + 2) as i16)];
    for i in 0..filler {
        p.extend_from_slice(&ld_imm64(2, 0x1234_5678_9abc_def0 ^ i as u64));
    }
    p.extend_from_slice(&[mov64_imm(0, 2), exit(), mov64_imm(0, 1), exit()]);
    p
}

#[test]
fn short_and_long_jumps_converge() {
    let (short, _) = kbpf_jit::emit(&jump_over(2), ProgType::RawBuffer).unwrap();
    let (long, offs) = kbpf_jit::emit(&jump_over(40), ProgType::RawBuffer).unwrap();
    // 2 fillers: jcc rel8 (74 xx); 40 fillers (10 bytes each): jcc rel32 (0f 84).
    let first = |code: &[u8], offs: &[u32]| code[offs[0] as usize + 3..].to_vec();
    let (_, so) = kbpf_jit::emit(&jump_over(2), ProgType::RawBuffer).unwrap();
    assert_eq!(first(&short, &so)[0], 0x74);
    assert_eq!(&first(&long, &offs)[..2], &[0x0f, 0x84]);
    for f in [2, 12, 13, 40] {
        assert_eq!(run(&jump_over(f), 0), 1, "filler {f}");
        assert_eq!(run(&jump_over(f), 5), 2, "filler {f}");
    }
}

#[test]
fn emit_is_what_compile_installs() {
    support::install();
    let p = jump_over(20);
    let (code, offsets) = kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap();
    let image = kbpf_jit::compile(&p, ProgType::RawBuffer).unwrap();
    assert_eq!(image.code().unwrap(), code);
    assert_eq!(image.size(), code.len());
    assert_eq!(image.insn_offsets(), &offsets[..]);
    // No frame: a tail call enters through `leave; jmp <instruction 0>` after the code.
    let tail = image.tail_call_entry() - image.entry();
    // (This image is long enough for the jump back to need a rel32.)
    assert_eq!(&code[tail..tail + 2], &[0xc9, 0xe9]);
    let rel = i32::from_le_bytes(code[tail + 2..tail + 6].try_into().unwrap());
    assert_eq!(tail as i64 + 6 + rel as i64, offsets[0] as i64);
    // With a frame (it names R10), instruction 0's code is the tail-call entry.
    let p = [mov64_reg(0, 10), exit()];
    let (_, offsets) = kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap();
    let image = kbpf_jit::compile(&p, ProgType::RawBuffer).unwrap();
    assert_eq!(image.tail_call_entry(), image.entry() + offsets[0] as usize);
}

#[test]
fn unwinding_helper_stops_the_run_from_a_subprogram() {
    // main: r6 = 40; call f; r0 += r6; exit.  f: r1 = <arg>; call 5 (stops on 0); r0 = 2; exit.
    let prog = |arg: i32| {
        vec![
            mov64_imm(6, 40),
            call_local(2),
            alu64_reg(alu::ADD, 0, 6),
            exit(),
            mov64_imm(1, arg),
            call_helper(5),
            mov64_imm(0, 2),
            exit(),
        ]
    };
    assert_eq!(run(&prog(1), 0), 42);
    assert_eq!(run(&prog(0), 0), 0);
    // callx with an id the program type does not offer stops the run with r0 = 0.
    let p = [
        mov64_imm(0, 9),
        mov64_imm(2, 77),
        callx(2),
        mov64_imm(0, 1),
        exit(),
    ];
    assert_eq!(run(&p, 0), 0);
}

#[test]
fn may_goto_bounds_a_loop() {
    // r0 = 0; loop: may_goto +2; r0 += 1; ja loop; exit
    let p = [
        mov64_imm(0, 0),
        Insn::new(0xe5, 0, 0, 2, 0),
        alu64_imm(alu::ADD, 0, 1),
        ja(-3),
        exit(),
    ];
    assert_eq!(run(&p, 0), 8 * 1024 * 1024);
}

#[test]
fn loop_heads_start_on_16_byte_boundaries() {
    // r0 = 0; r1 = 10; loop: r0 += 3; r1 -= 1; if r1 != 0 goto loop; exit. The loop head is
    // slot 2, whatever the prologue before it.
    let p = [
        mov64_imm(0, 0),
        mov64_imm(1, 10),
        alu64_imm(alu::ADD, 0, 3),
        alu64_imm(alu::SUB, 1, 1),
        jmp_imm(0x50, 1, 0, -3),
        exit(),
    ];
    let (_, offsets) = kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap();
    assert_eq!(offsets[2] % 16, 0);
    // The fall-through runs the NOP padding before it.
    assert_eq!(run(&p, 0), 30);
}
