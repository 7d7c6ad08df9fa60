//! Fused pairs: a peephole over the pre-decoded ops that turns two common neighbours into one
//! op, so the run loop dispatches once for both. Each pair is a counted loop's step and test
//! (`r += k; if r < n goto loop`, with any of the six unsigned and equality tests), the address
//! of a stack slot (`r = r10; r += -8`), and the return of a constant (`r0 = k; exit`).
//!
//! Only the first slot changes: the fused op does what the two ops do and moves past the
//! second, which stays as written, so a jump to the second slot still runs it alone. The
//! `sbpf`-style "superinstruction" needs no jump-target analysis that way.

use super::{IOp, K};

/// The fused kind for `a` followed by `b`, if they form a pair this module fuses.
fn fused(a: &IOp, b: &IOp) -> Option<K> {
    Some(match (a.k, b.k) {
        (K::AddI64, K::JeqI) if a.dst == b.dst => K::AddI64JeqI,
        (K::AddI64, K::JneI) if a.dst == b.dst => K::AddI64JneI,
        (K::AddI64, K::JltI) if a.dst == b.dst => K::AddI64JltI,
        (K::AddI64, K::JleI) if a.dst == b.dst => K::AddI64JleI,
        (K::AddI64, K::JgtI) if a.dst == b.dst => K::AddI64JgtI,
        (K::AddI64, K::JgeI) if a.dst == b.dst => K::AddI64JgeI,
        (K::MovR64, K::AddI64) if a.dst == b.dst => K::MovR64AddI64,
        (K::MovI64, K::Exit) if a.dst == 0 => K::MovI64Exit,
        _ => return None,
    })
}

/// Fuses every pair in `ops` (one program's, slot by slot). A fused op is never the last one:
/// its partner follows it.
pub(super) fn fuse(ops: &mut [IOp]) {
    for i in 1..ops.len() {
        if let Some(k) = fused(&ops[i - 1], &ops[i]) {
            ops[i - 1].k = k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn op(k: K, dst: u8) -> IOp {
        IOp {
            k,
            dst,
            src: 0,
            off: 0,
            imm: 0,
        }
    }

    #[test]
    fn pairs_on_one_register_fuse_and_the_second_slot_stays() {
        let mut ops = [
            op(K::AddI64, 1),
            op(K::JltI, 1),
            op(K::AddI64, 1),
            op(K::JltI, 2),
            op(K::MovR64, 2),
            op(K::AddI64, 2),
            op(K::MovI64, 0),
            op(K::Exit, 0),
        ];
        fuse(&mut ops);
        let kinds: Vec<K> = ops.iter().map(|o| o.k).collect();
        assert_eq!(
            kinds,
            [
                K::AddI64JltI,
                K::JltI,
                K::AddI64,
                K::JltI,
                K::MovR64AddI64,
                K::AddI64,
                K::MovI64Exit,
                K::Exit
            ]
        );
    }

    #[test]
    fn a_constant_in_another_register_does_not_return() {
        let mut ops = [op(K::MovI64, 3), op(K::Exit, 0)];
        fuse(&mut ops);
        assert_eq!(ops[0].k, K::MovI64);
    }
}
