//! Scalar range tracking as Linux 6.18 does it (`adjust_scalar_min_max_vals`,
//! `reg_bounds_sync`, `is_branch_taken`, `regs_refine_cond_op`): one program per class the
//! host differential's `alu_bounds`/`branch_bounds` templates found, each the smallest of
//! its class, with the verdict and errno the host gives. The value read is a 16-byte array
//! value at `value + R2 + off`.

use kbpf::Errno;
use kbpf::insn::{Insn, assemble};
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};
use kbpf::verifier::{VerifierEnv, verify};

fn maps(h: u32) -> Option<MapAttr> {
    (h == 0).then_some(MapAttr::new(MapType::Array, 4, 16, 4))
}

/// The value of key 0 in R7, then `body` (which sets R2), then the read at `value + R2 + off`.
fn run(body: &str, off: i32, privileged: bool) -> Result<(), (Errno, String)> {
    let asm = format!(
        "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\njne %r0, 0, +1\nexit\nmov %r7, %r0\n{body}mov %r1, %r7\nadd %r1, %r2\nldxb %r0, [%r1{off:+}]\nout:\nmov %r0, 0\nexit"
    );
    let insns: Vec<Insn> = assemble(&asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let env = VerifierEnv {
        prog_type: ProgType::SocketFilter,
        maps: &maps,
        ctx_size: 0,
        privileged,
        allow_loops: true,
        expected_attach_type: None,
    };
    verify(&insns, &env)
        .map(|_| ())
        .map_err(|e| (e.errno, e.log))
}

fn accepted(body: &str, off: i32) {
    for p in [true, false] {
        if let Err((e, log)) = run(body, off, p) {
            panic!("{body} @{off} (privileged {p}): {e:?}\n{log}");
        }
    }
}

fn refused(body: &str, off: i32, errno: Errno, fragment: &str) {
    let (e, log) = run(body, off, true).expect_err(body);
    assert_eq!(e, errno, "{body} @{off}\n{log}");
    assert!(log.contains(fragment), "{body} @{off}: {log}");
}

/// Division and modulo give an unknown scalar, all 64 bits, even for constants and 32-bit
/// forms (`is_safe_to_compute_dst_reg_range`).
#[test]
fn division_and_modulo_are_unknown() {
    for op in [
        "div", "mod", "sdiv", "smod", "div32", "mod32", "sdiv32", "smod32",
    ] {
        refused(
            &format!("mov %r2, 0\n{op} %r2, 1\n"),
            0,
            Errno::EINVAL,
            "unbounded min value",
        );
    }
}

/// A shift by a non-constant amount is unknown, all 64 bits also for a 32-bit shift; a
/// 32-bit shift whose amount has a known low half but a large 64-bit value too.
#[test]
fn shift_by_a_variable_is_unknown() {
    let bounded = "ldxdw %r3, [%r7+0]\njgt %r3, 3, out\n";
    refused(
        &format!("mov %r2, 15\n{bounded}rsh %r2, %r3\n"),
        0,
        Errno::EINVAL,
        "unbounded min value",
    );
    refused(
        &format!("mov %r2, 0\n{bounded}rsh32 %r2, %r3\n"),
        0,
        Errno::EINVAL,
        "unbounded min value",
    );
    refused(
        "mov %r2, 0\nlddw %r3, 0x100000008\nrsh32 %r2, %r3\n",
        0,
        Errno::EINVAL,
        "unbounded min value",
    );
    accepted("mov %r2, 0x70\nrsh32 %r2, 4\n", 0);
}

/// A product keeps the signed range of its corner products: -1 * [0, 15] is [-15, 0].
#[test]
fn mul_keeps_the_signed_range() {
    refused(
        "mov %r2, -1\nldxdw %r3, [%r7+0]\nand %r3, 15\nmul %r2, %r3\n",
        -8,
        Errno::EACCES,
        "min value is negative",
    );
    accepted(
        "mov %r2, -1\nldxdw %r3, [%r7+0]\nand %r3, 7\nmul %r2, %r3\nneg %r2\n",
        0,
    );
}

/// A 32-bit sum is computed on the signed 32-bit ranges: [-8, 7] - 16 is [-24, -9], which
/// zero-extended is near 2^32 (the signed 32-bit range of a 64-bit range across zero comes
/// from its two consecutive upper halves).
#[test]
fn add32_uses_the_signed_32_bit_range() {
    refused(
        "ldxdw %r2, [%r7+0]\njsgt %r2, 7, out\njslt %r2, -8, out\nadd32 %r2, -16\n",
        -8,
        Errno::EINVAL,
        "value 4294967272 makes map_value pointer be out of bounds",
    );
}

/// `jset` is decided only against a known operand: [0, 15] & {0, 16, 32, 48} is always 0, but
/// neither is known, so both directions are explored.
#[test]
fn jset_needs_a_known_operand() {
    refused(
        "ldxdw %r3, [%r7+0]\nand %r3, 0x30\nldxdw %r2, [%r7+8]\nand %r2, 15\njset %r3, %r2, +1\nja out\n",
        15,
        Errno::EACCES,
        "max value is outside",
    );
}

/// A signed range across zero whose unsigned range meets one end only: `s[-8, 7]` and
/// `r <= 0xffffffff80000000` (unsigned) is [0, 7].
#[test]
fn sign_crossing_range_meets_one_end() {
    accepted(
        "ldxdw %r2, [%r7+0]\njsgt %r2, 7, out\njslt %r2, -8, out\njgt %r2, 0x80000000, out\n",
        0,
    );
}

/// A bound moves to the adjacent 2^32 window only when the range lies in two windows: a low
/// half in [0, 15] and a signed minimum of 16 with the upper half unknown stays at 16.
#[test]
fn bound_stays_in_its_window_over_many() {
    refused(
        "ldxdw %r2, [%r7+0]\njgt32 %r2, 15, out\njsle %r2, 15, out\n",
        0,
        Errno::EACCES,
        "min value is outside",
    );
}

/// A sign-extending move keeps a signed range that fits: `(s32)` of [-8, 7] is [-8, 7].
#[test]
fn movsx_keeps_a_range_that_fits() {
    refused(
        "ldxdw %r3, [%r7+0]\njsgt %r3, 7, out\njslt %r3, -8, out\nmovsx3264 %r2, %r3\n",
        0,
        Errno::EACCES,
        "min value is negative",
    );
    // At +8 the signed range is in the value, but as unsigned it reaches 2^64 - 8 (the
    // unsigned maximum is what the access checks); the default mode refuses the mixed-sign
    // offset first (Spectre v1).
    let body = "ldxdw %r3, [%r7+0]\njsgt %r3, 7, out\njslt %r3, -8, out\nmovsx3264 %r2, %r3\n";
    refused(body, 8, Errno::EACCES, "unbounded memory access");
    let (e, log) = run(body, 8, false).expect_err(body);
    assert!(
        e == Errno::EACCES && log.contains("mixed signed bounds"),
        "{log}"
    );
}

/// `le32` is a truncation that keeps the 32-bit range: [2^31 - 8, 2^31 + 7] stays, and its
/// minimum is then too large an offset (`EINVAL`, not the `EACCES` of an unbounded access).
#[test]
fn le32_keeps_the_32_bit_range() {
    refused(
        "ldxw %r2, [%r7+0]\nand %r2, 15\nadd32 %r2, 0x7ffffff8\nle32 %r2\n",
        0,
        Errno::EINVAL,
        "value 2147483640 makes map_value pointer be out of bounds",
    );
}

/// The product's tnum is the union of both outcomes at each unknown bit (Linux 6.18's
/// `tnum_mul`): {1, 17, .., 241} * 0x7fffffff has low halves of at least 0x7fffff0f.
#[test]
fn tnum_mul_is_the_union_of_outcomes() {
    refused(
        "ldxdw %r2, [%r7+0]\nand %r2, 0xf0\nor %r2, 1\nmul32 %r2, 0x7fffffff\n",
        0,
        Errno::EINVAL,
        "value 2147483407 makes map_value pointer be out of bounds",
    );
}

/// Where `jset` falls through and that clears bits of the tnum, the ranges start over from
/// the new tnum (as the 6.18 host does): `r <= 12; if r & 1` leaves [0, 14] (even values up to
/// 14), so a read at +3 is refused; a `jset` that teaches nothing keeps the range.
#[test]
fn jset_clearing_bits_restarts_the_ranges() {
    let le12 = "ldxdw %r2, [%r7+0]\njgt %r2, 12, out\n";
    refused(
        &format!("{le12}jset %r2, 1, out\n"),
        3,
        Errno::EACCES,
        "max value is outside",
    );
    refused(
        &format!("{le12}jset32 %r2, 1, out\n"),
        3,
        Errno::EACCES,
        "max value is outside",
    );
    accepted(&format!("{le12}jset %r2, 16, out\n"), 3);
    // The taken direction of a single bit keeps the range: [1, 12] with bit 0 set.
    accepted(&format!("{le12}jset %r2, 1, +1\nja out\n"), 3);
}

/// An unsigned range and a tnum sharing a single value make that constant
/// (`__update_reg64_bounds`): `(r & 0xf0) | 1` is one of 1, 17, .., 241, and `r <= 16` leaves 1.
#[test]
fn range_and_tnum_sharing_one_value_is_that_constant() {
    let odd = "ldxdw %r2, [%r7+0]\nand %r2, 0xf0\nor %r2, 1\n";
    accepted(&format!("{odd}jgt %r2, 16, out\n"), 14);
    refused(
        &format!("{odd}jgt %r2, 17, out\n"),
        0,
        Errno::EACCES,
        "max value is outside",
    );
}
