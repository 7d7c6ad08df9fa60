//! `kbpf ct` and the conntrack examples from the command line, through `kbpf shell` on one
//! state (the same code the binary runs): entries added with `ct add` are what `prog run` of
//! `synproxy.o` finds, what `ct_track.o` inserts shows in `ct list`, namespaces by id, errors
//! with their errnos; `kbpf verify` gives the kernel's verdicts on the examples.

use kbpf_shim::cli::{State, run_args, shell};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `script` in a shell; (status, stdout, stderr).
fn sh(state: &mut State, script: &str) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let s = shell::shell(state, &mut script.as_bytes(), &mut out, &mut err);
    (
        s,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// A TCP segment 10.0.0.2:40000 -> 10.0.0.1:80 with `flags`, written to a scratch file.
fn segment(name: &str, flags: u8) -> String {
    let f = kbpf_shim::demo::ct::tcp_frame(
        [10, 0, 0, 2].into(),
        [10, 0, 0, 1].into(),
        40000,
        80,
        flags,
    );
    let p = std::env::temp_dir().join(format!("kbpf-cli-ct-{}-{name}", std::process::id()));
    std::fs::write(&p, f).unwrap();
    p.display().to_string()
}

#[test]
fn ct_commands_and_programs_share_one_table() {
    kbpf_shim::host::install();
    std::env::set_current_dir(root()).unwrap();
    let (ack, syn) = (segment("ack", 0x10), segment("syn", 0x02));
    let mut state = State::default();
    let script = format!(
        "ct netns-add --id 31\n\
         ct add --src 10.0.0.2 --dst 10.0.0.1 --sport 40000 --dport 80 --mark 7 --netns 1 --status 4\n\
         ct list --netns 1\n\
         prog run examples/bpf/synproxy.o --privileged --netns 1 --data-in {ack}\n\
         ct del --src 10.0.0.2 --dst 10.0.0.1 --sport 40000 --dport 80 --netns 1\n\
         prog run examples/bpf/synproxy.o --netns 1 --data-in {ack}\n\
         prog run examples/bpf/synproxy.o --netns 1 --data-in {syn}\n\
         prog run examples/bpf/ct_track.o --privileged --netns 1 --data-in {syn}\n\
         ct list --netns 1 --json\n\
         ct stats\n\
         ct flush --netns 1\n\
         ct netns-del 1\n"
    );
    let (status, out, err) = sh(&mut state, &script);
    assert_eq!(status, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "netns 1 id 31");
    assert!(lines[1].starts_with("added src=10.0.0.2"), "{out}");
    assert!(
        lines[2].contains("[ASSURED|CONFIRMED] mark=7 zone=0 netns=1 refs=1"),
        "{out}"
    );
    let retvals: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("retval="))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // Known flow: pass; deleted, so the ACK is dropped; a SYN passes; ct_track: TC_ACT_OK.
    assert_eq!(
        retvals,
        ["retval=2", "retval=1", "retval=2", "retval=0"],
        "{out}"
    );
    let json = lines.iter().find(|l| l.starts_with('[')).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v[0]["mark"], 42, "ct_track's mark: {json}");
    assert_eq!(v[0]["status"], "ASSURED|CONFIRMED");
    assert_eq!(v[0]["netns"], 1);
    assert!(out.contains("netns 1 (id 31): 1 entries"), "{out}");
    assert!(out.contains("flushed 1 entries"), "{out}");
    state.close();
}

#[test]
fn ct_errors_say_why() {
    kbpf_shim::host::install();
    let mut state = State::default();
    let run = |state: &mut State, args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run_args(args, state, &mut std::io::empty(), &mut out, &mut err);
        (s, String::from_utf8(err).unwrap())
    };
    let (s, e) = run(
        &mut state,
        &["ct", "add", "--src", "10.0.0.1", "--dst", "::1"],
    );
    assert_eq!(s, 2, "{e}");
    assert!(e.contains("the same address family"), "{e}");
    let (s, e) = run(
        &mut state,
        &[
            "ct", "add", "--src", "1.2.3.4", "--dst", "5.6.7.8", "--netns", "63",
        ],
    );
    assert_eq!(s, 1, "{e}");
    assert!(e.contains("ENONET"), "{e}");
    let (s, e) = run(
        &mut state,
        &[
            "ct", "del", "--src", "1.2.3.4", "--dst", "5.6.7.8", "--sport", "9",
        ],
    );
    assert_eq!(s, 1, "{e}");
    assert!(e.contains("ENOENT"), "{e}");
    let (s, e) = run(
        &mut state,
        &[
            "ct",
            "add",
            "--proto",
            "icmp",
            "--src",
            "1.2.3.4",
            "--dst",
            "5.6.7.8",
            "--icmp-type",
            "3",
        ],
    );
    assert_eq!(s, 1, "{e}");
    assert!(e.contains("EINVAL"), "an ICMP type without a reply: {e}");
    let (s, e) = run(&mut state, &["ct", "netns-del", "0"]);
    assert_eq!(s, 1, "{e}");
    state.close();
}

#[test]
fn verify_gives_the_kernels_verdict_on_the_examples() {
    kbpf_shim::host::install();
    std::env::set_current_dir(root()).unwrap();
    let mut state = State::default();
    for f in ["examples/bpf/synproxy.o", "examples/bpf/ct_track.o"] {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run_args(
            &["verify", f],
            &mut state,
            &mut std::io::empty(),
            &mut out,
            &mut err,
        );
        let text = String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap();
        assert_eq!(s, 1, "{f} without CAP_PERFMON: {text}");
        assert!(text.contains("allowed only to CAP_PERFMON"), "{text}");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run_args(
            &["verify", "--privileged", f],
            &mut state,
            &mut std::io::empty(),
            &mut out,
            &mut err,
        );
        assert_eq!(
            s,
            0,
            "{f} with root's rules: {}",
            String::from_utf8(err).unwrap()
        );
    }
    state.close();
}
