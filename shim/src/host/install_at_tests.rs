//! `exec_install_at`: code emitted for the address the host picked, placed within `rel32` reach
//! of the address it asks for, and nothing left allocated when the emitter fails.

use super::exec::{ExecAllocator, reaches};
use super::pack::{CHUNK_SIZE, PACK_MAX_REQUEST};
use kbpf::Errno;
use kbpf::host::ExecRegion;

/// `call rel32` to `target` from `at` (the call's address), then `ret`.
fn call_then_ret(at: usize, target: usize) -> Vec<u8> {
    let rel = i32::try_from(target as i64 - (at as i64 + 5))
        .unwrap_or_else(|_| panic!("{at:#x} -> {target:#x} out of reach"));
    let mut code = vec![0xe8];
    code.extend_from_slice(&rel.to_le_bytes());
    code.push(0xc3);
    code
}

extern "C" fn forty_two() -> u64 {
    42
}

fn run(region: &ExecRegion) -> u64 {
    // SAFETY: the region holds `call rel32 forty_two; ret`, a C-ABI function calling a C-ABI
    // function; it touches nothing but rax and the stack.
    let f: extern "C" fn() -> u64 = unsafe { core::mem::transmute(region.rx) };
    f()
}

#[test]
fn code_placed_near_its_target_calls_it_rel32() {
    let a = ExecAllocator::new();
    let near = forty_two as *const () as usize;
    for len in [6, CHUNK_SIZE * 3, PACK_MAX_REQUEST + 1] {
        let mut asked = Vec::new();
        let r = a
            .install_at(len, near, &mut |base| {
                asked.push(base);
                let mut code = call_then_ret(base, near);
                code.resize(len, 0x90);
                Ok(code)
            })
            .unwrap();
        assert_eq!(
            asked,
            [r.rx as usize],
            "emit is called once, with the final address"
        );
        assert!(
            reaches(r.rx as usize, r.len, near),
            "len {len}: placed out of reach"
        );
        assert_eq!(run(&r), 42);
        a.free(r);
    }
}

#[test]
fn a_failed_emit_leaves_nothing_allocated() {
    let a = ExecAllocator::new();
    let first = a.install(&[0xc3]).unwrap();
    let mut at = 0;
    for err in [Errno::ERANGE, Errno::EFAULT] {
        let r = a.install_at(64, forty_two as *const () as usize, &mut |base| {
            at = base;
            Err(err)
        });
        assert_eq!(r.unwrap_err(), err);
    }
    // The wrong length is the host's EINVAL.
    assert_eq!(
        a.install_at(64, 0, &mut |_| Ok(vec![0xc3; 63]))
            .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        a.install_at(0, 0, &mut |_| Ok(vec![])).unwrap_err(),
        Errno::EINVAL
    );
    // The chunks offered to the failed emitter are free again: the same request gets them.
    let again = a
        .install_at(64, forty_two as *const () as usize, &mut |_| {
            Ok(vec![0xc3; 64])
        })
        .unwrap();
    assert_eq!(again.rx as usize, at);
    let big = a.install_at(PACK_MAX_REQUEST + 1, 0, &mut |_| Err(Errno::ENOSPC));
    assert_eq!(big.unwrap_err(), Errno::ENOSPC);
    a.free(again);
    a.free(first);
}
