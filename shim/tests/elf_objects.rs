//! The ELF loader on its test objects (`shim/tests/elf/*.c`, built by `examples/bpf/build.sh`
//! and committed): BPF-to-BPF calls, kfuncs resolved by name, CO-RE against a type kbpf does
//! not know, line info carried to the linked program.

use kbpf::Errno;
use kbpf::kfunc::ids;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::pseudo;
use kbpf_shim::elf::{LoadOpts, Object};

fn object(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/elf")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(fd: u32, x: u32, y: u32) -> u32 {
    let mut ctx = [x.to_ne_bytes(), y.to_ne_bytes()].concat();
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    r.retval as u32
}

#[test]
fn bpf_to_bpf_calls_are_linked_per_program() {
    kbpf_shim::host::install();
    let obj = Object::parse(&object("calls.o")).unwrap();
    let a = obj.prog("calls_a").unwrap();
    // The entry, then poly, square and twice appended once each: four functions.
    assert_eq!(a.func_info.len(), 4, "{:?}", a.func_info);
    assert_eq!(a.func_info[0].insn_off, 0);
    assert_eq!(a.ctx_size, Some(8), "the context size comes from BTF");
    assert!(!a.line_info.is_empty());
    let obj = obj.load(&LoadOpts::default()).unwrap();
    let (pa, pb) = (
        obj.prog("calls_a").unwrap().fd,
        obj.prog("calls_b").unwrap().fd,
    );
    // calls_a: x^2 + 2x + 3 + 2y; calls_b: 2x * 100 + y^2.
    assert_eq!(run(pa, 5, 7), 25 + 10 + 3 + 14);
    assert_eq!(run(pb, 5, 7), 1000 + 49);
    obj.close();
}

#[test]
fn kfuncs_resolve_by_name() {
    kbpf_shim::host::install();
    let obj = Object::parse(&object("kfunc.o")).unwrap();
    let p = obj.prog("ct_lookup").unwrap();
    let kcalls: Vec<i32> = p
        .insns
        .iter()
        .filter(|i| i.code == 0x85 && i.src() == pseudo::KFUNC_CALL)
        .map(|i| i.imm)
        .collect();
    assert_eq!(
        kcalls,
        [ids::BPF_SKB_CT_LOOKUP as i32, ids::BPF_CT_RELEASE as i32]
    );
    // The conntrack kfuncs run: an empty table, so the lookup misses (TC_ACT_OK).
    let obj = obj.load(&LoadOpts::default()).unwrap();
    let fd = obj.prog("ct_lookup").unwrap().fd;
    assert_eq!(kbpf_shim::ct::run_once(fd, None), Ok(0));
    obj.close();
}

#[test]
fn core_against_an_unknown_type_names_the_relocation() {
    let e = Object::parse(&object("core_unknown.o")).unwrap_err();
    assert_eq!(e.errno, Errno::ENOTSUPP);
    for w in [
        "section tc",
        "CO-RE relocation #0",
        "task_struct",
        "__sk_buff",
    ] {
        assert!(e.msg.contains(w), "{w:?} not in {}", e.msg);
    }
}

#[test]
fn callbacks_and_custom_data_sections_link_and_run() {
    kbpf_shim::host::install();
    let obj = Object::parse(&object("callback.o")).unwrap();
    let p = obj.prog("callback").unwrap();
    assert!(
        p.insns
            .iter()
            .any(|i| i.is_ld_imm64() && i.src() == pseudo::FUNC),
        "the callback's address is a BPF_PSEUDO_FUNC"
    );
    assert!(obj.maps.iter().any(|m| m.name == ".data.custom"));
    let obj = obj.load(&LoadOpts::default()).unwrap();
    let mut pkt = vec![0u8; 64];
    let r = syscall::prog_test_run(
        obj.prog("callback").unwrap().fd,
        &mut TestRun {
            data: &mut pkt,
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 4 + 5 + u64::from(b'e'));
    obj.close();
}
