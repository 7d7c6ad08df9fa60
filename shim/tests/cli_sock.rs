//! `kbpf sock …` end to end in a `kbpf shell` session: the seed's sk_lookup example linked to
//! a netns, sockets stored in its SOCKMAP with `map update … sock:NAME`, lookups and connects
//! through the lookup path, a test run reporting the selected cookie, UDP datagrams, and the
//! errors a session reports without ending.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shell(script: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbpf"))
        .arg("shell")
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
        .write_all(script.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A `struct bpf_sk_lookup` for TCP 10.1.1.1:4000 -> 192.0.2.7:80.
fn ctx_file() -> PathBuf {
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
fn a_session_steers_connections_through_the_example() {
    let ctx = ctx_file();
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
    let (code, out, err) = shell(&script);
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
fn bad_names_and_addresses_are_reported() {
    let (_, _, err) = shell(
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
    );
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
