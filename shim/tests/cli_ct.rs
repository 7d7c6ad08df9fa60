//! `kbpf ct` and the conntrack examples from the command line, through `kbpf shell` on one
//! state (the same code the binary runs): entries added with `ct add` are what `prog run` of
//! `synproxy.o` finds, what `ct_track.o` inserts shows in `ct list`, namespaces by id, errors
//! with their errnos, namespaces shared with `kbpf sock`; `kbpf verify` gives the kernel's
//! verdicts on the examples.

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
    // Other tests make namespaces too: this one's number is what `ct netns-add` says.
    let (status, out, err) = sh(&mut state, "ct netns-add --id 31\n");
    assert_eq!(status, 0, "{out}\n{err}");
    let n: u32 = out
        .trim()
        .strip_prefix("netns ")
        .unwrap()
        .strip_suffix(" id 31")
        .unwrap()
        .parse()
        .unwrap();
    let script = format!(
        "ct add --src 10.0.0.2 --dst 10.0.0.1 --sport 40000 --dport 80 --mark 7 --netns {n} --status 4\n\
         ct list --netns {n}\n\
         prog run examples/bpf/synproxy.o --privileged --netns {n} --data-in {ack}\n\
         ct del --src 10.0.0.2 --dst 10.0.0.1 --sport 40000 --dport 80 --netns {n}\n\
         prog run examples/bpf/synproxy.o --netns {n} --data-in {ack}\n\
         prog run examples/bpf/synproxy.o --netns {n} --data-in {syn}\n\
         prog run examples/bpf/ct_track.o --privileged --netns {n} --data-in {syn}\n\
         ct list --netns {n} --json\n\
         ct stats\n\
         ct flush --netns {n}\n\
         ct netns-del {n}\n"
    );
    let (status, out, err) = sh(&mut state, &script);
    assert_eq!(status, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("added src=10.0.0.2"), "{out}");
    assert!(
        lines[1].contains(&format!(
            "[ASSURED|CONFIRMED] mark=7 zone=0 netns={n} refs=1"
        )),
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
    assert_eq!(v[0]["netns"], n);
    assert!(
        out.contains(&format!("netns {n} (id 31): 1 entries")),
        "{out}"
    );
    assert!(out.contains(&format!("netns {n} destroyed")), "{out}");
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

/// `kbpf sock netns` and `kbpf ct netns-add` make the same netns: one made by `sock netns --id`
/// holds conntrack entries by its number; `ct netns-del` closes the session's handle, and the
/// netns (with its entries) lives on while a socket of it does, then exits and its entries go.
#[test]
fn sock_and_ct_share_namespaces() {
    kbpf_shim::host::install();
    let mut state = State::default();
    let mut run = |args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run_args(args, &mut state, &mut std::io::empty(), &mut out, &mut err);
        let (out, err) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        );
        assert_eq!(s, 0, "{args:?}: {out}{err}");
        out
    };
    let out = run(&["sock", "netns", "shared", "--id", "4077"]);
    // "netns shared: ino I num N id 4077"
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        (words[4], &words[6..]),
        ("num", &["id", "4077"][..]),
        "{out}"
    );
    let num = words[5];
    let add = [
        "ct", "add", "--src", "10.9.0.2", "--dst", "10.9.0.1", "--sport", "4000", "--dport", "80",
        "--netns", num,
    ];
    run(&add);
    run(&["sock", "create", "l", "tcp4", "--netns", "shared"]);
    run(&["sock", "bind", "l", "127.0.0.1:8080"]);
    let stats = run(&["ct", "stats"]);
    assert!(
        stats.contains(&format!("netns {num} (id 4077): 1 entries")),
        "{stats}"
    );
    let del = run(&["ct", "netns-del", num]);
    assert_eq!(
        del.trim(),
        format!("netns {num} released (its sockets still use it)")
    );
    let list = run(&["ct", "list", "--netns", num]);
    assert!(list.ends_with("1 entries\n"), "still there: {list}");
    run(&["sock", "close", "l"]);
    let list = run(&["ct", "list", "--netns", num]);
    assert!(list.ends_with("0 entries\n"), "flushed at exit: {list}");
    let stats = run(&["ct", "stats"]);
    assert!(!stats.contains(&format!("netns {num} ")), "{stats}");
    // `ct netns-add` is `sock netns` named by the number: socket commands find it so.
    let out = run(&["ct", "netns-add"]);
    let num = out.trim().strip_prefix("netns ").unwrap().to_string();
    run(&["sock", "create", "u", "udp4", "--netns", &num]);
    run(&["sock", "close", "u"]);
    let del = run(&["ct", "netns-del", &num]);
    assert_eq!(del.trim(), format!("netns {num} destroyed"));
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
