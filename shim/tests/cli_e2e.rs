//! The `kbpf` binary end to end: arguments, output, exit statuses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kbpf(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbpf"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A scratch file with `bytes`.
fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kbpf-e2e-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn help_is_generated_for_every_command() {
    let (code, out, _) = text(&kbpf(&["--help"], ""));
    assert_eq!(code, 0);
    for c in [
        "demo",
        "prog",
        "map",
        "tcx",
        "verify",
        "conformance",
        "bench",
        "shell",
    ] {
        assert!(out.contains(c), "{c} missing from --help:\n{out}");
    }
    let (code, out, _) = text(&kbpf(&["prog", "run", "--help"], ""));
    assert_eq!(code, 0);
    for f in [
        "--data-in",
        "--data-out",
        "--ctx-in",
        "--ctx-out",
        "--repeat",
        "--prog",
        "--section",
    ] {
        assert!(out.contains(f), "{f} missing:\n{out}");
    }
    let (code, _, err) = text(&kbpf(&["prog", "frobnicate"], ""));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn prog_run_prints_retval_and_duration_last() {
    let mut ctx = vec![0u8; 64];
    ctx[..4].copy_from_slice(&1u32.to_le_bytes()); // write
    ctx[16..24].copy_from_slice(&7u64.to_le_bytes()); // fd 7
    let ctx = scratch("write.ctx", &ctx);
    let out_path = scratch("write.out", b"");
    let (code, out, err) = text(&kbpf(
        &[
            "prog",
            "run",
            "examples/bpf/syscall.o",
            "--prog",
            "syscall_entry",
            "--ctx-in",
            ctx.to_str().unwrap(),
            "--ctx-out",
            out_path.to_str().unwrap(),
            "--repeat",
            "100",
        ],
        "",
    ));
    assert_eq!(code, 0, "{err}");
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("retval=7 duration_ns="), "{out}");
    assert_eq!(std::fs::read(&out_path).unwrap().len(), 64);
    // Several programs and no --prog: a clear error, exit 2.
    let (code, _, err) = text(&kbpf(&["prog", "run", "examples/bpf/syscall.o"], ""));
    assert_eq!(code, 2);
    assert!(err.contains("pick one with --prog"), "{err}");
}

#[test]
fn prog_run_runs_a_tc_program_on_a_packet() {
    use kbpf_shim::progs::{ipv4_packet, l4_ports, pad_frame};
    let telnet = scratch(
        "telnet.pkt",
        &pad_frame(ipv4_packet(6, &l4_ports(40000, 23))),
    );
    let https = scratch(
        "https.pkt",
        &pad_frame(ipv4_packet(6, &l4_ports(40000, 443))),
    );
    let out_path = scratch("pkt.out", b"");
    let run = |pkt: &Path, prog: &str| {
        let (code, out, err) = text(&kbpf(
            &[
                "prog",
                "run",
                "examples/bpf/parser.o",
                "--prog",
                prog,
                "--data-in",
                pkt.to_str().unwrap(),
                "--data-out",
                out_path.to_str().unwrap(),
            ],
            "",
        ));
        assert_eq!(code, 0, "{err}");
        out.lines().last().unwrap().to_string()
    };
    // The parser tail-calls parse_tcp, which drops telnet (TC_ACT_SHOT) and passes the rest.
    assert!(run(&telnet, "packet_parser").starts_with("retval=2 "));
    assert!(run(&https, "packet_parser").starts_with("retval=0 "));
    assert!(run(&telnet, "parse_tcp").starts_with("retval=2 "));
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        std::fs::read(&telnet).unwrap()
    );
    // Without a packet: a clear error.
    let (code, _, err) = text(&kbpf(
        &[
            "prog",
            "run",
            "examples/bpf/parser.o",
            "--prog",
            "parse_tcp",
        ],
        "",
    ));
    assert_eq!(code, 2);
    assert!(err.contains("needs --data-in"), "{err}");
}

#[test]
fn verify_exit_statuses() {
    let (code, out, _) = text(&kbpf(&["verify", "examples/bpf/parser.o"], ""));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(": accepted").count(), 4, "{out}");
    let (code, out, _) = text(&kbpf(
        &[
            "verify",
            "examples/bpf/parser.o",
            "--section",
            "tc",
            "--prog",
            "parse_udp",
        ],
        "",
    ));
    assert_eq!(code, 0);
    assert_eq!(out.matches(": accepted").count(), 1, "{out}");
    let junk = scratch("junk.o", b"\x7fELF not really");
    let (code, _, err) = text(&kbpf(&["verify", junk.to_str().unwrap()], ""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("EINVAL"), "{err}");
    // A program the verifier refuses: reading a map value without a NULL check.
    let bad = scratch(
        "bad.data",
        b"# type: socket_filter\n# map: m hash key=4 value=8 max=4\n-- raw\n\
          0x00000000fffc0a62\n0x000000000000a2bf\n0xfffffffc00000207\n0x0000000000001118\n\
          0x0000000000000000\n0x0000000100000085\n0x0000000000000079\n0x0000000000000095\n",
    );
    let (code, out, err) = text(&kbpf(&["verify", bad.to_str().unwrap()], ""));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("rejected (EACCES)"), "{out}");
    assert!(out.contains("invalid mem access"), "{out}");
}

#[test]
fn dump_xlated_prints_source_lines_and_jited_works_for_data_with_mem() {
    let (code, out, err) = text(&kbpf(
        &[
            "prog",
            "dump",
            "xlated",
            "examples/bpf/parser.o",
            "--prog",
            "packet_parser",
        ],
        "",
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("@ parser.c:"), "{out}");
    assert!(out.contains("bpf_tail_call"), "{out}");
    // A raw-buffer .data file that reads its -- mem: the memory's length is the context size.
    let data = scratch(
        "mem.data",
        b"-- asm\nldxw %r0, [%r1+4]\nexit\n-- mem\n01 02 03 04 05 06 07 08\n-- result\n0x8070605\n",
    );
    let (code, out, err) = text(&kbpf(
        &["prog", "dump", "jited", data.to_str().unwrap()],
        "",
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bytes of x86-64"), "{out}");
    let (code, out, err) = text(&kbpf(&["prog", "run", data.to_str().unwrap()], ""));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("retval={} ", 0x0807_0605)),
        "{out}"
    );
}

#[test]
fn shell_fills_a_tail_call_slot_by_program_name() {
    let mut ctx = vec![0u8; 64];
    ctx[..4].copy_from_slice(&257u32.to_le_bytes()); // openat: no program in the table
    ctx[16..24].copy_from_slice(&9u64.to_le_bytes());
    let ctx = scratch("openat.ctx", &ctx);
    let run = format!(
        "prog run examples/bpf/syscall.o --prog syscall_entry --ctx-in {}",
        ctx.display()
    );
    let script = format!(
        "prog load examples/bpf/syscall.o\n{run}\n\
         map update syscall_jmp_table u32:257 prog:sys_write_event\n{run}\n\
         map delete syscall_jmp_table u32:257\n{run}\n"
    );
    let (code, out, err) = text(&kbpf(&["shell"], &script));
    assert_eq!(code, 0, "{err}");
    let rets: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("retval="))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // Default path (-1), then sys_write_event's fd argument, then the default again.
    assert_eq!(
        rets,
        ["retval=4294967295", "retval=9", "retval=4294967295"],
        "{out}"
    );
}

#[test]
fn shell_keeps_one_state() {
    let script = "\
# load once, run many times: the maps and global data stay
prog load examples/bpf/syscall.o --engine interp
prog run examples/bpf/syscall.o --prog syscall_entry
prog run examples/bpf/syscall.o --prog syscall_entry
map lookup calls u32:0
map lookup .bss u32:0
map create counters --type array --key 4 --value 8 --entries 2
map update counters u32:1 u64:5
map dump counters --json
prog show --json
no such command
prog load examples/bpf/tcx_chain.o
tcx attach 9 ingress tcx_count
tcx attach 9 ingress tcx_accept --after -
tcx attach 9 ingress tcx_firewall --before tcx_accept
tcx attach 9 ingress tcx_audit --replace tcx_count
tcx query 9 ingress --json
";
    let (code, out, err) = text(&kbpf(&["shell"], script));
    assert_eq!(code, 2, "the bad line fails the shell's status: {err}");
    assert!(err.contains("unrecognized subcommand"), "{err}");
    // Two runs of syscall 0 (read) counted in the same map.
    assert!(
        out.contains("key: 00 00 00 00  value: 02 00 00 00 00 00 00 00"),
        "{out}"
    );
    assert!(
        out.contains(r#"{"key":["0x01","0x00","0x00","0x00"],"value":["0x05""#),
        "{out}"
    );
    assert!(out.contains(r#""name":"syscall_entry""#), "{out}");
    let q: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let names: Vec<&str> = q["progs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tcx_audit", "tcx_firewall", "tcx_accept"]);
}

#[test]
fn demo_reports_every_seed() {
    let (code, out, err) = text(&kbpf(&["demo"], ""));
    assert_eq!(code, 0, "{err}");
    for w in [
        "x86-64 JIT",
        "seed 000: packet parser",
        "parse_tcp: dport 443",
        "-> drop  parse_tcp: dport 23",
        "after deleting jmp_table[6]",
        "tail calls taken (stats map): icmp 1, tcp 2, udp 1",
        "seed 000: syscall dispatcher",
        "seed 001: tcx programs",
        "tcx_count -> tcx_audit -> tcx_firewall -> tcx_accept",
        "mark 0x2a",
        "seed 002: BPF_PROG_TYPE_SK_LOOKUP",
        "192.0.2.254:80     -> nginx",
        "198.51.100.1:8443  -> proxy",
        "proxy closed: connect -> 198.51.100.1:22    -> refused",
        "seed 003: list-based patching",
        "ns per packet",
    ] {
        assert!(out.contains(w), "{w:?} missing:\n{out}");
    }
    let (code, out, err) = text(&kbpf(&["demo", "--engine", "interp"], ""));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("on the interpreter") && out.contains("interpreted"),
        "{out}"
    );
}

/// A `struct bpf_sk_lookup` for TCP 10.1.1.1:4000 -> 192.0.2.7:80.
fn sk_lookup_ctx_file() -> PathBuf {
    let mut b = vec![0u8; 72];
    b[8..12].copy_from_slice(&2u32.to_ne_bytes());
    b[12..16].copy_from_slice(&6u32.to_ne_bytes());
    b[16..20].copy_from_slice(&[10, 1, 1, 1]);
    b[36..38].copy_from_slice(&4000u16.to_be_bytes());
    b[40..44].copy_from_slice(&[192, 0, 2, 7]);
    b[60..64].copy_from_slice(&80u32.to_ne_bytes());
    let p = std::env::temp_dir().join(format!("kbpf-sock-{}-ctx", std::process::id()));
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn sock_session_steers_connections_through_the_sk_lookup_example() {
    let ctx = sk_lookup_ctx_file();
    let script = format!(
        "prog load examples/bpf/sk_lookup.o
sock netns demo
sock create nginx tcp4 --netns demo
sock bind nginx 10.0.0.1:8080
sock listen nginx
sock create proxy tcp4 --netns demo
sock bind proxy 10.0.0.2:3128
sock listen proxy
map update services u32:0 sock:nginx
map update services u32:1 sock:proxy
sock attach steer_prefix_port --netns demo
sock attach steer_addr_any_port --netns demo
sock query --netns demo
sock lookup tcp 10.1.1.1:4000 192.0.2.7:80 --netns demo
sock lookup tcp 10.1.1.1:4000 198.51.100.1:22 --netns demo
sock lookup tcp 10.1.1.1:4000 198.51.100.2:22 --netns demo
sock create c tcp4 --netns demo
sock connect c 192.0.2.7:80
sock accept nginx conn
sock list
prog run examples/bpf/sk_lookup.o --prog steer_prefix_port --ctx-in {}
sock close proxy
sock lookup tcp 10.1.1.1:4000 198.51.100.1:22 --netns demo
sock create u udp4 --netns demo
sock bind u 127.0.0.1:53
sock create q udp4 --netns demo
sock send q hello --to 127.0.0.1:53
sock recv u
sock recv u
sock detach steer_prefix_port
sock query --netns demo
",
        ctx.display()
    );
    let (code, out, err) = text(&kbpf(&["shell"], &script));
    for want in [
        "1 steer_prefix_port\n2 steer_addr_any_port\ncount 2",
        "10.1.1.1:4000 -> 192.0.2.7:80: nginx (sk_lookup)",
        "10.1.1.1:4000 -> 198.51.100.1:22: proxy (sk_lookup)",
        "10.1.1.1:4000 -> 198.51.100.2:22: no socket",
        "c: connected to 192.0.2.7:80, queued on nginx",
        "conn: 192.0.2.7:80 <- 192.0.2.7:",
        "cookie=1\nretval=1",
        "10.1.1.1:4000 -> 198.51.100.1:22: refused (ECONNREFUSED)",
        "q: delivered to u",
        "u: \"hello\" from 127.0.0.1:",
        "2 steer_addr_any_port\ncount 1",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}\n{err}");
    }
    assert!(
        out.contains("conn       tcp4 established 192.0.2.7:80"),
        "{out}"
    );
    // The second receive finds nothing: the session reports it and goes on.
    assert!(err.contains("kbpf: recv: EAGAIN"), "{err}");
    assert_eq!(code, 1, "the last failure's status");
}

#[test]
fn sock_bad_names_and_addresses_are_reported() {
    let (_, _, err) = text(&kbpf(
        &["shell"],
        "sock bind nope 127.0.0.1:1
sock create a tcp4
sock create a tcp4
sock bind a [::1]:1
sock create b tcp4
sock bind a 127.0.0.1:7
sock bind b 127.0.0.1:7
sock attach nothing
sock lookup tcp 127.0.0.1:1 [::1]:2
sock create v udp4 --v6only
",
    ));
    for want in [
        "no socket named nope",
        "a socket named a exists",
        "bind: EAFNOSUPPORT",
        "bind: EADDRINUSE",
        "no loaded program named nothing",
        "lookup: EAFNOSUPPORT",
        "IPV6_V6ONLY: EOPNOTSUPP",
    ] {
        assert!(err.contains(want), "{want:?} missing:\n{err}");
    }
}
