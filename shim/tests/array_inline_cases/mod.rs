//! Array-map lookup inlining (`verifier::fixups`, the kernel's `array_map_gen_lookup` from
//! `do_misc_fixups`) run end to end, shared by `array_inline.rs` (interpreter) and
//! `array_inline_jit.rs` (JIT). Programs are raw-buffer programs on a 16-byte context: a u32
//! index at 0 and a u64 value at 8. Every verified program is checked against the same
//! program loaded on the trusted path, which keeps the helper call. As in the kernel, lookups
//! are inlined only when a JIT is requested (registered): under the interpreter the verified
//! programs keep their calls, and the generated sequence itself is run on a single-element
//! array whose base a `BPF_PSEUDO_MAP_VALUE` reference gives.

use super::ENGINE;
use kbpf::helpers::map_ops;
use kbpf::insn::*;
use kbpf::maps::ArrayLayout;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::{MapFlags, MapType, ProgFlags, ProgType, alu, func, jmp, pseudo};
use kbpf::verifier::fixups::array_map_gen_lookup;
use kbpf::{MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::Engine;

const CTX_LEN: usize = 16;
/// What the read program returns when the lookup misses.
const MISS: u64 = 77_777;
/// Indices tried: in range, on the bound, past it, and with the top bit set.
const INDICES: [u32; 8] = [0, 1, 3, 4, 5, 6, 0x8000_0000, u32::MAX];
const MAX_ENTRIES: u32 = 5;
/// Whether verified lookups are inlined on this engine (`prog->jit_requested`).
const INLINED: bool = matches!(ENGINE, Engine::Jit);

fn setup() {
    kbpf_shim::host::install();
    ENGINE.select();
}

/// `r0 = map_lookup_elem(map, &(u32)ctx[0])`, with R6 = ctx; then `if r0 == 0 goto miss`
/// (`miss` is `skip` instructions after the jump).
fn lookup_prologue(map: Fd, skip: i16) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::W, 7, 6, 0),
        stx_mem(Size::W, 10, 7, -4),
        mov64_reg(2, 10),
        alu64_imm(alu::ADD, 2, -4),
    ];
    p.extend(ld_map_fd(1, map));
    p.push(call_helper(func::MAP_LOOKUP_ELEM));
    p.push(jmp_imm(jmp::JEQ, 0, 0, skip));
    p
}

/// Stores the ctx value at the first and the last 8 bytes of element `ctx[0]`; returns 1, or 0
/// when the lookup misses.
fn store_prog(map: Fd, value_size: i16) -> Vec<Insn> {
    let mut p = lookup_prologue(map, 5);
    p.extend([
        ldx_mem(Size::DW, 8, 6, 8),
        stx_mem(Size::DW, 0, 8, 0),
        stx_mem(Size::DW, 0, 8, value_size - 8),
        mov64_imm(0, 1),
        exit(),
        mov64_imm(0, 0),
        exit(),
    ]);
    p
}

/// Returns the sum of the first and last 8 bytes of element `ctx[0]`, or [`MISS`].
fn read_prog(map: Fd, value_size: i16) -> Vec<Insn> {
    let mut p = lookup_prologue(map, 4);
    p.extend([
        ldx_mem(Size::DW, 8, 0, value_size - 8),
        ldx_mem(Size::DW, 0, 0, 0),
        alu64_reg(alu::ADD, 0, 8),
        exit(),
        mov64_imm(0, MISS as i32),
        exit(),
    ]);
    p
}

/// Looks up in `m0` when the ctx value is 0, else in `m1` (one call, two maps: poisoned).
fn two_map_prog(m0: Fd, m1: Fd) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::W, 7, 6, 0),
        stx_mem(Size::W, 10, 7, -4),
        mov64_reg(2, 10),
        alu64_imm(alu::ADD, 2, -4),
        ldx_mem(Size::DW, 8, 6, 8),
    ];
    p.extend(ld_map_fd(1, m0));
    p.push(jmp_imm(jmp::JEQ, 8, 0, 2));
    p.extend(ld_map_fd(1, m1));
    p.extend([
        call_helper(func::MAP_LOOKUP_ELEM),
        jmp_imm(jmp::JEQ, 0, 0, 2),
        ldx_mem(Size::DW, 0, 0, 0),
        exit(),
        mov64_imm(0, MISS as i32),
        exit(),
    ]);
    p
}

/// Loads `insns` verified (`trusted == false`) or on the trusted path; asserts the engine.
fn load(insns: &[Insn], trusted: bool) -> Fd {
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns);
    let mut log = String::new();
    let fd = if trusted {
        syscall::prog_load_trusted(&attr)
    } else {
        syscall::prog_load_log(&attr.with_ctx_size(CTX_LEN as u32), &mut log)
    };
    let fd = fd.unwrap_or_else(|e| panic!("load: {e:?}: {log}"));
    assert_eq!(
        syscall::prog_get(fd).unwrap().jited(),
        ENGINE == Engine::Jit
    );
    fd
}

/// Whether the loaded program still calls `bpf_map_lookup_elem`.
fn calls_lookup(fd: Fd) -> bool {
    let p = syscall::prog_get(fd).unwrap();
    p.insns().contains(&call_helper(func::MAP_LOOKUP_ELEM))
}

fn run(fd: Fd, index: u32, value: u64) -> u64 {
    let mut ctx = [0u8; CTX_LEN];
    ctx[..4].copy_from_slice(&index.to_ne_bytes());
    ctx[8..].copy_from_slice(&value.to_ne_bytes());
    syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .expect("run")
    .retval
}

fn array(value_size: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::Array, 4, value_size, MAX_ENTRIES)).unwrap()
}

/// Every element of array `map`, as user space reads it.
fn contents(map: Fd, value_size: usize) -> Vec<Vec<u8>> {
    (0..MAX_ENTRIES)
        .map(|i| {
            let mut v = vec![0u8; value_size];
            syscall::map_lookup_elem(map, &i.to_ne_bytes(), &mut v).unwrap();
            v
        })
        .collect()
}

/// Stores and reads back through inlined lookups on one array and through helper calls on
/// another; results and the maps' contents must match, and out-of-range indices miss.
fn inlined_matches_helper(value_size: u32) {
    setup();
    let vs = value_size as i16;
    let (inl, called) = (array(value_size), array(value_size));
    let store = load(&store_prog(inl, vs), false);
    let read = load(&read_prog(inl, vs), false);
    assert_eq!(calls_lookup(store), !INLINED);
    assert_eq!(calls_lookup(read), !INLINED);
    let store_ref = load(&store_prog(called, vs), true);
    let read_ref = load(&read_prog(called, vs), true);
    assert!(
        calls_lookup(store_ref) && calls_lookup(read_ref),
        "trusted path untouched"
    );
    for (n, &i) in INDICES.iter().enumerate() {
        let v = 0x0101_0101_0101_0101u64.wrapping_mul(n as u64 + 1);
        let hit = run(store, i, v);
        assert_eq!(hit, u64::from(i < MAX_ENTRIES), "store hit for index {i}");
        assert_eq!(hit, run(store_ref, i, v), "store vs helper for index {i}");
        let got = run(read, i, 0);
        let want = if i < MAX_ENTRIES {
            v.wrapping_add(v)
        } else {
            MISS
        };
        assert_eq!(got, want, "read back index {i}");
        assert_eq!(got, run(read_ref, i, 0), "read vs helper for index {i}");
    }
    let vs = value_size as usize;
    assert_eq!(contents(inl, vs), contents(called, vs));
    // An element the inlined code wrote reads back in user space at the element's place.
    let e3 = &contents(inl, vs)[3];
    assert_eq!(e3[..8], 0x0303_0303_0303_0303u64.to_ne_bytes());
    assert_eq!(e3[vs - 8..], 0x0303_0303_0303_0303u64.to_ne_bytes());
}

#[test]
fn power_of_two_elements() {
    inlined_matches_helper(16);
}

#[test]
fn elements_that_need_a_multiply() {
    // 20-byte values are 24 bytes apart.
    inlined_matches_helper(20);
}

#[test]
fn single_element_array() {
    setup();
    let m = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 1)).unwrap();
    let store = load(&store_prog(m, 8), false);
    assert_eq!(calls_lookup(store), !INLINED);
    assert_eq!(run(store, 0, 42), 1);
    assert_eq!(run(store, 1, 43), 0);
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(m, &0u32.to_ne_bytes(), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 42);
}

/// Whether the loaded program calls the internal map operation `id` directly.
fn calls_direct(fd: Fd, id: i32) -> bool {
    syscall::prog_get(fd)
        .unwrap()
        .insns()
        .contains(&call_helper(id))
}

#[test]
fn hash_lookups_become_direct_calls_of_the_hash_lookup() {
    setup();
    let h = syscall::map_create(&MapAttr::new(MapType::Hash, 4, 16, 8)).unwrap();
    syscall::map_update_elem(h, &2u32.to_ne_bytes(), &[0u8; 16], 0).unwrap();
    let store = load(&store_prog(h, 16), false);
    // `htab_map_gen_lookup`: a direct call of the map type's lookup, when a JIT is requested.
    assert_eq!(calls_lookup(store), !INLINED);
    assert_eq!(calls_direct(store, map_ops::id::HASH_LOOKUP), INLINED);
    assert_eq!(run(store, 2, 9), 1);
    assert_eq!(run(store, 3, 9), 0);
    let read = load(&read_prog(h, 16), false);
    assert_eq!(run(read, 2, 0), 18);
    assert_eq!(run(read, 3, 0), MISS);
}

#[test]
fn an_inner_map_array_is_called_not_inlined() {
    setup();
    let mut attr = MapAttr::new(MapType::Array, 4, 8, MAX_ENTRIES);
    attr.flags = MapFlags::INNER_MAP;
    let m = syscall::map_create(&attr).unwrap();
    let store = load(&store_prog(m, 8), false);
    assert_eq!(calls_lookup(store), !INLINED);
    assert_eq!(calls_direct(store, map_ops::id::ARRAY_LOOKUP), INLINED);
    for (i, want) in [(0, 1), (4, 1), (5, 0), (u32::MAX, 0)] {
        assert_eq!(run(store, i, 40 + u64::from(i)), want, "index {i}");
    }
    let read = load(&read_prog(m, 8), false);
    assert_eq!(run(read, 4, 0), 2 * 44);
    assert_eq!(run(read, 5, 0), MISS);
}

#[test]
fn a_call_that_sees_two_maps_keeps_the_call() {
    setup();
    let (a, b) = (array(8), array(8));
    syscall::map_update_elem(a, &1u32.to_ne_bytes(), &5u64.to_ne_bytes(), 0).unwrap();
    syscall::map_update_elem(b, &1u32.to_ne_bytes(), &6u64.to_ne_bytes(), 0).unwrap();
    let fd = load(&two_map_prog(a, b), false);
    assert!(calls_lookup(fd), "poisoned map pointer: not inlined");
    assert_eq!(run(fd, 1, 0), 5);
    assert_eq!(run(fd, 1, 1), 6);
    assert_eq!(run(fd, MAX_ENTRIES, 1), MISS);
}

/// Constant blinding, explicit zero extension and the `BPF_F_TEST_RND_HI32` self-test all run
/// after the fix-ups, on the inlined code.
#[test]
fn later_passes_keep_inlined_lookups_right() {
    setup();
    for variant in 0..3 {
        let m = array(16);
        let insns = store_prog(m, 16);
        let mut attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(CTX_LEN as u32);
        match variant {
            0 => attr.blind = true,
            1 => attr = attr.with_needs_zext(true),
            _ => attr.flags = ProgFlags::TEST_RND_HI32,
        }
        let fd = syscall::prog_load(&attr).unwrap();
        assert_eq!(calls_lookup(fd), !INLINED, "variant {variant}");
        assert_eq!(run(fd, 4, 11), 1, "variant {variant}");
        assert_eq!(run(fd, 5, 11), 0, "variant {variant}");
        assert_eq!(run(fd, u32::MAX, 11), 0, "variant {variant}");
        assert_eq!(
            contents(m, 16)[4][8..],
            11u64.to_ne_bytes(),
            "variant {variant}"
        );
    }
}

/// The code `array_map_gen_lookup` emits, in place of the call of [`store_prog`] on a
/// single-element array (its base is what `BPF_PSEUDO_MAP_VALUE` resolves to), run on this
/// engine from the trusted path: index 0 hits, every other misses.
#[test]
fn the_generated_sequence_runs_on_this_engine() {
    setup();
    let m = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 1)).unwrap();
    let layout = ArrayLayout {
        base: 0,
        max_entries: 1,
        elem_size: 8,
    };
    let mut code = array_map_gen_lookup(&layout).unwrap().to_vec();
    code.splice(..2, ld_imm64_raw(1, pseudo::MAP_VALUE, u64::from(m)));
    let mut p = store_prog(m, 8);
    let call = p
        .iter()
        .position(|i| *i == call_helper(func::MAP_LOOKUP_ELEM))
        .unwrap();
    p.splice(call..=call, code);
    let fd = load(&p, true);
    assert!(!calls_lookup(fd));
    for i in [1, 2, 0x8000_0000, u32::MAX] {
        assert_eq!(run(fd, i, 5), 0, "index {i}");
    }
    assert_eq!(run(fd, 0, 99), 1);
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(m, &0u32.to_ne_bytes(), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 99);
}
