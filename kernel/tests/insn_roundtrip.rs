//! Round trips between the instruction views: `Op` ⇄ slots (`encode`/`decode`), slots ⇄ text
//! (`disasm`/`assemble`), slots ⇄ `u64`/bytes; and the assembler against every program of the
//! bpf_conformance suite in `testdata/bpf_conformance` (checked against its `-- raw` where one
//! exists). Linux has no counterpart: its selftests do not assemble text.

use std::path::PathBuf;

use kbpf::insn::{
    AluOp, AtomicOp, Call, Cond, EndKind, Insn, Op, Operand, Size, assemble, decode, disasm,
    disasm_op, encode, ja32,
};
use proptest::prelude::*;

fn reg() -> impl Strategy<Value = u8> {
    0u8..=10
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W), Just(Size::DW)]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        reg().prop_map(Operand::Reg),
        any::<i32>().prop_map(Operand::Imm)
    ]
}

fn alu() -> impl Strategy<Value = Op> {
    use AluOp::*;
    let plain = prop_oneof![
        Just(Add),
        Just(Sub),
        Just(Mul),
        Just(Div),
        Just(SDiv),
        Just(Or),
        Just(And),
        Just(Lsh),
        Just(Rsh),
        Just(Mod),
        Just(SMod),
        Just(Xor),
        Just(Mov),
        Just(Arsh),
    ];
    prop_oneof![
        (any::<bool>(), plain, reg(), operand()).prop_map(|(wide, op, dst, src)| Op::Alu {
            wide,
            op,
            dst,
            src
        }),
        (any::<bool>(), reg()).prop_map(|(wide, dst)| Op::Alu {
            wide,
            op: Neg,
            dst,
            src: Operand::Imm(0)
        }),
        (
            any::<bool>(),
            prop_oneof![Just(8u8), Just(16), Just(32)],
            reg(),
            reg()
        )
            .prop_map(|(wide, bits, dst, s)| Op::Alu {
                // movsx from 32 bits only exists in the 64-bit class.
                wide: wide || bits == 32,
                op: MovSx(bits),
                dst,
                src: Operand::Reg(s)
            }),
        (
            prop_oneof![
                Just(EndKind::ToLe),
                Just(EndKind::ToBe),
                Just(EndKind::Swap)
            ],
            prop_oneof![Just(16u8), Just(32), Just(64)],
            reg()
        )
            .prop_map(|(kind, bits, dst)| Op::End { kind, bits, dst }),
    ]
}

fn jmp() -> impl Strategy<Value = Op> {
    use Cond::*;
    let cond = prop_oneof![
        Just(Eq),
        Just(Gt),
        Just(Ge),
        Just(Set),
        Just(Ne),
        Just(Sgt),
        Just(Sge),
        Just(Lt),
        Just(Le),
        Just(Slt),
        Just(Sle),
    ];
    prop_oneof![
        any::<i32>().prop_map(|off| Op::Ja { off }),
        any::<i16>().prop_map(|off| Op::Ja { off: off as i32 }),
        (any::<bool>(), cond, reg(), operand(), any::<i16>()).prop_map(
            |(wide, cond, dst, src, off)| Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off
            }
        ),
        any::<i32>().prop_map(|i| Op::Call(Call::Helper(i))),
        any::<i32>().prop_map(|i| Op::Call(Call::Local(i))),
        any::<i32>().prop_map(|i| Op::Call(Call::Kfunc(i))),
        reg().prop_map(|r| Op::Call(Call::Reg(r))),
        (
            any::<bool>(),
            prop::option::of(0u16..=i16::MAX as u16),
            any::<Option<u32>>()
        )
            .prop_map(
                |(verified, map, key)| Op::TailCall(kbpf::insn::TailCallAux { verified, map, key })
            ),
        Just(Op::Exit),
        any::<i16>().prop_map(|off| Op::MayGoto { off }),
    ]
}

fn mem() -> impl Strategy<Value = Op> {
    let rmw = prop_oneof![
        any::<bool>().prop_map(|fetch| AtomicOp::Add { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::Or { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::And { fetch }),
        any::<bool>().prop_map(|fetch| AtomicOp::Xor { fetch }),
        Just(AtomicOp::Xchg),
        Just(AtomicOp::Cmpxchg),
    ];
    let ordered = prop_oneof![Just(AtomicOp::LoadAcquire), Just(AtomicOp::StoreRelease)];
    prop_oneof![
        (size(), any::<bool>(), reg(), reg(), any::<i16>()).prop_map(
            |(size, sign, dst, src, off)| Op::Ldx {
                size,
                sign: sign && size != Size::DW,
                dst,
                src,
                off
            }
        ),
        (size(), reg(), any::<i16>(), any::<i32>()).prop_map(|(size, dst, off, imm)| Op::St {
            size,
            dst,
            off,
            imm
        }),
        (size(), reg(), reg(), any::<i16>()).prop_map(|(size, dst, src, off)| Op::Stx {
            size,
            dst,
            src,
            off
        }),
        (
            prop_oneof![Just(Size::W), Just(Size::DW)],
            rmw,
            reg(),
            reg(),
            any::<i16>()
        )
            .prop_map(|(size, op, dst, src, off)| Op::Atomic {
                size,
                op,
                dst,
                src,
                off
            }),
        (size(), ordered, reg(), reg(), any::<i16>()).prop_map(|(size, op, dst, src, off)| {
            Op::Atomic {
                size,
                op,
                dst,
                src,
                off,
            }
        }),
        (reg(), 0u8..=6, any::<u64>()).prop_map(|(dst, pseudo, imm)| Op::LdImm64 {
            dst,
            pseudo,
            imm
        }),
        (
            prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W)],
            any::<bool>(),
            reg(),
            any::<i32>()
        )
            .prop_map(|(size, indirect, src, imm)| Op::LdPacket {
                size,
                indirect,
                src: if indirect { src } else { 0 },
                imm
            }),
    ]
}

/// Every form `decode` accepts.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![alu(), jmp(), mem()]
}

/// The slots of `op`; a `ja` may also take the `ja32` encoding when `alt` is set.
fn slots(op: &Op, alt: bool) -> Vec<Insn> {
    let mut v = Vec::new();
    match *op {
        Op::Ja { off } if alt => v.push(ja32(off)),
        _ => encode(op, &mut v),
    }
    v
}

fn text_of(insns: &[Insn]) -> String {
    let lines = disasm(insns).expect("decodable");
    lines.into_iter().map(|(_, t)| t + "\n").collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(op in op(), alt in any::<bool>()) {
        let v = slots(&op, alt);
        prop_assert_eq!(v.len(), op.slots());
        prop_assert_eq!(decode(&v, 0), Ok(op));
    }

    #[test]
    fn disasm_then_assemble_is_identity(op in op(), alt in any::<bool>()) {
        let v = slots(&op, alt);
        let text = text_of(&v);
        prop_assert_eq!(assemble(&text).map_err(|e| e.to_string()), Ok(v), "text: {}", text);
        // A bare op's text names an encoding of the same op.
        let again = assemble(&disasm_op(&op)).map_err(|e| e.to_string());
        prop_assert_eq!(again.map(|p| decode(&p, 0)), Ok(Ok(op)));
    }

    #[test]
    fn programs_round_trip(ops in prop::collection::vec((op(), any::<bool>()), 1..24)) {
        let prog: Vec<Insn> = ops.iter().flat_map(|(op, alt)| slots(op, *alt)).collect();
        let lines = disasm(&prog).expect("decodable");
        let mut pc = 0;
        for ((at, _), (op, _)) in lines.iter().zip(&ops) {
            prop_assert_eq!(*at, pc);
            pc += op.slots();
        }
        prop_assert_eq!(assemble(&text_of(&prog)).map_err(|e| e.to_string()), Ok(prog));
    }

    #[test]
    fn u64_and_bytes_round_trip(v in any::<u64>(), code in any::<u8>(), dst in 0u8..16,
                                src in 0u8..16, off in any::<i16>(), imm in any::<i32>()) {
        let insn = Insn::from_u64(v);
        prop_assert_eq!(insn.to_u64(), v);
        prop_assert_eq!(Insn::from_bytes(insn.to_bytes()), insn);
        prop_assert_eq!(insn.to_bytes(), v.to_le_bytes());
        let built = Insn::new(code, dst, src, off, imm);
        prop_assert_eq!(Insn::from_u64(built.to_u64()), built);
        prop_assert_eq!((built.code, built.dst(), built.src(), built.off, built.imm),
                        (code, dst, src, off, imm));
    }
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ))
}

/// The lines of one `-- NAME` section, comments stripped, as the suite's reader sees them.
fn section(text: &str, name: &str) -> Option<String> {
    let (mut inside, mut found) = (false, false);
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        if line.contains("--") {
            inside = line.contains(name);
            found |= inside;
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    found.then_some(out)
}

#[test]
fn every_conformance_program_assembles() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir())
        .expect("testdata/bpf_conformance")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 313);
    let mut with_raw = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let asm = section(&text, "-- asm").unwrap_or_else(|| panic!("{path:?}: no asm"));
        let prog = assemble(&asm).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(!prog.is_empty(), "{path:?}");
        // Our own text of it reads back to the same slots.
        assert_eq!(assemble(&text_of(&prog)).unwrap(), prog, "{path:?}");
        if let Some(raw) = section(&text, "-- raw") {
            with_raw += 1;
            let raw: Vec<Insn> = raw
                .split_whitespace()
                .map(|w| {
                    let v = match w.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16),
                        None => w.parse(),
                    };
                    Insn::from_u64(v.unwrap())
                })
                .collect();
            assert_eq!(prog, raw, "{path:?}: -- asm differs from -- raw");
        }
    }
    assert_eq!(with_raw, 1, "only lddw.data has a -- raw section");
}

#[test]
fn lddw_data_raw_equals_asm() {
    let text = std::fs::read_to_string(conformance_dir().join("lddw.data")).unwrap();
    let prog = assemble(&section(&text, "-- asm").unwrap()).unwrap();
    let raw = [
        0x5566778800000018u64,
        0x1122334400000000,
        0x0000000000000095,
    ];
    assert_eq!(prog.iter().map(|i| i.to_u64()).collect::<Vec<_>>(), raw);
}

/// Each mnemonic against its encoding written out by hand from RFC 9669 (opcode, dst, src, off,
/// imm), so that a wrong entry in the name tables that `assemble` and `disasm` share cannot hide
/// behind the round trip. Each text is also what `disasm` prints for the slot.
#[test]
fn mnemonics_match_rfc9669_opcodes() {
    let cases: &[(&str, u8, u8, u8, i16, i32)] = &[
        ("add %r1, 2", 0x07, 1, 0, 0, 2),
        ("add %r1, %r2", 0x0f, 1, 2, 0, 0),
        ("add32 %r1, 2", 0x04, 1, 0, 0, 2),
        ("add32 %r1, %r2", 0x0c, 1, 2, 0, 0),
        ("sub %r1, 2", 0x17, 1, 0, 0, 2),
        ("mul32 %r1, %r2", 0x2c, 1, 2, 0, 0),
        ("div %r1, 2", 0x37, 1, 0, 0, 2),
        ("sdiv %r1, 2", 0x37, 1, 0, 1, 2),
        ("sdiv32 %r1, %r2", 0x3c, 1, 2, 1, 0),
        ("or %r1, 2", 0x47, 1, 0, 0, 2),
        ("and %r1, 2", 0x57, 1, 0, 0, 2),
        ("lsh %r1, 2", 0x67, 1, 0, 0, 2),
        ("rsh %r1, 2", 0x77, 1, 0, 0, 2),
        ("neg %r1", 0x87, 1, 0, 0, 0),
        ("neg32 %r1", 0x84, 1, 0, 0, 0),
        ("mod %r1, 2", 0x97, 1, 0, 0, 2),
        ("smod32 %r1, -2", 0x94, 1, 0, 1, -2),
        ("xor %r1, 2", 0xa7, 1, 0, 0, 2),
        ("mov %r1, -1", 0xb7, 1, 0, 0, -1),
        ("mov %r1, %r2", 0xbf, 1, 2, 0, 0),
        ("mov32 %r1, %r2", 0xbc, 1, 2, 0, 0),
        ("arsh %r1, 2", 0xc7, 1, 0, 0, 2),
        ("movsx832 %r1, %r2", 0xbc, 1, 2, 8, 0),
        ("movsx1632 %r1, %r2", 0xbc, 1, 2, 16, 0),
        ("movsx864 %r1, %r2", 0xbf, 1, 2, 8, 0),
        ("movsx1664 %r1, %r2", 0xbf, 1, 2, 16, 0),
        ("movsx3264 %r1, %r2", 0xbf, 1, 2, 32, 0),
        ("le16 %r3", 0xd4, 3, 0, 0, 16),
        ("be32 %r3", 0xdc, 3, 0, 0, 32),
        ("bswap64 %r3", 0xd7, 3, 0, 0, 64),
        ("ldxw %r0, [%r1+2]", 0x61, 0, 1, 2, 0),
        ("ldxh %r0, [%r1+2]", 0x69, 0, 1, 2, 0),
        ("ldxb %r0, [%r1+2]", 0x71, 0, 1, 2, 0),
        ("ldxdw %r0, [%r1-2]", 0x79, 0, 1, -2, 0),
        ("ldxsw %r0, [%r1+2]", 0x81, 0, 1, 2, 0),
        ("ldxsh %r0, [%r1+2]", 0x89, 0, 1, 2, 0),
        ("ldxsb %r0, [%r1+2]", 0x91, 0, 1, 2, 0),
        ("stw [%r10-4], 5", 0x62, 10, 0, -4, 5),
        ("sth [%r10-4], 5", 0x6a, 10, 0, -4, 5),
        ("stb [%r10-4], 5", 0x72, 10, 0, -4, 5),
        ("stdw [%r10-8], 5", 0x7a, 10, 0, -8, 5),
        ("stxw [%r10-4], %r1", 0x63, 10, 1, -4, 0),
        ("stxh [%r10-4], %r1", 0x6b, 10, 1, -4, 0),
        ("stxb [%r10-4], %r1", 0x73, 10, 1, -4, 0),
        ("stxdw [%r10-8], %r1", 0x7b, 10, 1, -8, 0),
        ("lock add32 [%r10-4], %r1", 0xc3, 10, 1, -4, 0x00),
        ("lock add [%r10-8], %r1", 0xdb, 10, 1, -8, 0x00),
        ("lock fetch add [%r10-8], %r1", 0xdb, 10, 1, -8, 0x01),
        ("lock or [%r10-8], %r1", 0xdb, 10, 1, -8, 0x40),
        ("lock fetch and32 [%r10-8], %r1", 0xc3, 10, 1, -8, 0x51),
        ("lock xor [%r10-8], %r1", 0xdb, 10, 1, -8, 0xa0),
        ("lock xchg [%r10-8], %r1", 0xdb, 10, 1, -8, 0xe1),
        ("lock cmpxchg32 [%r10-8], %r1", 0xc3, 10, 1, -8, 0xf1),
        ("load_acquire8 %r0, [%r1+0]", 0xd3, 0, 1, 0, 0x100),
        ("load_acquire16 %r0, [%r1+0]", 0xcb, 0, 1, 0, 0x100),
        ("load_acquire64 %r0, [%r1+0]", 0xdb, 0, 1, 0, 0x100),
        ("store_release32 [%r1+4], %r2", 0xc3, 1, 2, 4, 0x110),
        ("ldabsb 12", 0x30, 0, 0, 0, 12),
        ("ldabsh 12", 0x28, 0, 0, 0, 12),
        ("ldabsw 12", 0x20, 0, 0, 0, 12),
        ("ldindb %r2, 12", 0x50, 0, 2, 0, 12),
        ("ldindw %r2, 12", 0x40, 0, 2, 0, 12),
        ("ja +3", 0x05, 0, 0, 3, 0),
        ("ja32 -3", 0x06, 0, 0, 0, -3),
        ("jeq %r1, 2, +1", 0x15, 1, 0, 1, 2),
        ("jeq %r1, %r2, +1", 0x1d, 1, 2, 1, 0),
        ("jeq32 %r1, 2, +1", 0x16, 1, 0, 1, 2),
        ("jgt %r1, 2, +1", 0x25, 1, 0, 1, 2),
        ("jge %r1, 2, +1", 0x35, 1, 0, 1, 2),
        ("jset %r1, 2, +1", 0x45, 1, 0, 1, 2),
        ("jne32 %r1, %r2, -1", 0x5e, 1, 2, -1, 0),
        ("jsgt %r1, 2, +1", 0x65, 1, 0, 1, 2),
        ("jsge %r1, 2, +1", 0x75, 1, 0, 1, 2),
        ("jlt %r1, 2, +1", 0xa5, 1, 0, 1, 2),
        ("jle %r1, 2, +1", 0xb5, 1, 0, 1, 2),
        ("jslt %r1, 2, +1", 0xc5, 1, 0, 1, 2),
        ("jsle %r1, 2, +1", 0xd5, 1, 0, 1, 2),
        ("call 5", 0x85, 0, 0, 0, 5),
        ("call %r2", 0x8d, 2, 0, 0, 0),
        ("call local +7", 0x85, 0, 1, 0, 7),
        ("call kfunc 1234", 0x85, 0, 2, 0, 1234),
        ("exit", 0x95, 0, 0, 0, 0),
        ("may_goto +2", 0xe5, 0, 0, 2, 0),
        ("tail_call", 0xf5, 0, 0, 0, 0),
    ];
    for &(text, code, dst, src, off, imm) in cases {
        let want = Insn::new(code, dst, src, off, imm);
        assert_eq!(assemble(text), Ok(vec![want]), "{text}");
        assert_eq!(disasm(&[want]).unwrap()[0].1, text);
    }
    let want = [Insn::new(0x18, 1, 1, 0, 3), Insn::new(0, 0, 0, 0, 0)];
    assert_eq!(assemble("lddw %r1, map_fd 3"), Ok(want.to_vec()));
    assert_eq!(disasm(&want).unwrap()[0].1, "lddw %r1, map_fd 3");
    // Accepted aliases.
    assert_eq!(assemble("swap16 %r1"), assemble("bswap16 %r1"));
    assert_eq!(assemble("add64 %r1, 1"), assemble("add %r1, 1"));
    assert_eq!(
        assemble("load_acquire %r0, [%r1]"),
        assemble("load_acquire64 %r0, [%r1+0]")
    );
}
