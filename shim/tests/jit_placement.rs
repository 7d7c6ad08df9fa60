//! The shim host places JIT images within `rel32` reach of the helpers
//! (`Host::exec_install_at`), so a helper call is Linux's `call rel32`; `kbpf_jit::emit` alone,
//! which knows no address, keeps `movabs; call rax`. (Moved from `jit/tests/emit.rs`: the JIT's
//! own tests run on a minimal host that places nothing.)

use kbpf::insn::{alu64_imm, call_helper, exit, mov64_imm};
use kbpf::uapi::{ProgType, alu};

#[test]
fn helper_calls_are_rel32_once_the_host_places_the_image() {
    kbpf_shim::host::install();
    // r1 = 5; call 5 (the conformance helper: returns its argument); r0 += 1; exit
    let p = [
        mov64_imm(1, 5),
        call_helper(5),
        alu64_imm(alu::ADD, 0, 1),
        exit(),
    ];
    let image = kbpf_jit::compile(&p, ProgType::RawBuffer).unwrap();
    // SAFETY: the program touches nothing but its registers; the helper returns its argument.
    assert_eq!(unsafe { image.run(0, 0, &mut 0) }, 6);
    let helper = kbpf::helpers::func_proto(ProgType::RawBuffer, 5)
        .and_then(|p| p.func)
        .unwrap() as usize;
    // The displacement is taken from the installed address.
    let (code, at) = (image.code().unwrap(), image.insn_offsets()[1] as usize);
    assert_eq!(code[at], 0xe8, "call rel32");
    let rel = i32::from_le_bytes(code[at + 1..at + 5].try_into().unwrap());
    let target = (image.entry() + at + 5).wrapping_add_signed(rel as isize);
    assert_eq!(target, helper);
    // `emit` alone does not know the address: its code stays position independent.
    let (pic, offsets) = kbpf_jit::emit(&p, ProgType::RawBuffer).unwrap();
    let at = offsets[1] as usize;
    assert_eq!(&pic[at..at + 2], &[0x48, 0xb8], "movabs rax, helper");
    assert_eq!(&pic[at + 2..at + 10], &(helper as u64).to_le_bytes());
    assert_eq!(&pic[at + 10..at + 12], &[0xff, 0xd0], "call rax");
}
