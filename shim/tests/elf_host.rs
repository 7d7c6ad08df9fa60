//! The C examples' programs through the host Linux kernel's verifier as well as kbpf's: the
//! two verdicts agree on every program the host can judge (not raw_buffer), in the default
//! mode and with root's rules — the conntrack examples' kfunc calls go to the host with its
//! own BTF ids, and they load only with root's rules on both sides (they read `struct
//! nf_conn`). SKIPPED (said on stderr) where the host cannot load BPF programs.

use kbpf::syscall;
use kbpf_shim::demo::ct::{CT_TRACK_O, SYNPROXY_O};
use kbpf_shim::demo::{PARSER_O, SK_LOOKUP_O, SYSCALL_O, TCX_CHAIN_O};
use kbpf_shim::elf::{LoadOpts, Object, attr, bind};
use kbpf_shim::elf_host::host_verdict;
use kbpf_shim::host_bpf::{HostVerdict, HostVerifier};

#[test]
fn host_and_kbpf_agree_on_the_examples() {
    kbpf_shim::host::install();
    let host = match HostVerifier::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: the host kernel's verifier is unavailable: {why}");
            return;
        }
    };
    let (mut asked, mut accepted) = (0, 0);
    for (name, bytes) in [
        ("parser.o", PARSER_O),
        ("syscall.o", SYSCALL_O),
        ("tcx_chain.o", TCX_CHAIN_O),
        ("sk_lookup.o", SK_LOOKUP_O),
        ("synproxy.o", SYNPROXY_O),
        ("ct_track.o", CT_TRACK_O),
    ] {
        let obj = Object::parse(bytes).unwrap();
        let fds = obj.create_maps().unwrap();
        for p in &obj.progs {
            for privileged in [false, true] {
                let Ok(h) = host_verdict(&host, &obj, p, privileged) else {
                    continue;
                };
                let insns = bind(p, &fds);
                let mut log = String::new();
                let opts = LoadOpts {
                    privileged,
                    ..LoadOpts::default()
                };
                let ours = syscall::prog_verify_log(&attr(p, &insns, &opts), &mut log);
                let theirs = matches!(h, HostVerdict::Accepted);
                assert_eq!(
                    ours.is_ok(),
                    theirs,
                    "{name}: {} (privileged {privileged}): kbpf {ours:?} {log}, host {h:?}",
                    p.name
                );
                asked += 1;
                accepted += usize::from(theirs);
            }
        }
        for fd in fds {
            let _ = syscall::close(fd);
        }
    }
    assert_eq!(
        asked, 26,
        "the TC, tcx, sk_lookup and XDP programs are all asked, in both modes"
    );
    assert_eq!(
        accepted, 24,
        "all but the conntrack ones in the default mode"
    );
}
