//! SK-01 … SK-13: what the verifier lets a program do with `struct bpf_sk_lookup`, and what
//! each allowed read returns at run time (the bytes of the uapi struct), plus the property
//! that random contexts read back exactly through every allowed narrow read.

use super::support::*;
use super::{prog, setup};
use kbpf::Errno;
use kbpf::insn::assemble;
use kbpf::net::Proto;
use kbpf::net::sk_lookup::ctx::BpfSkLookup;
use kbpf::syscall::{self, Fd};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The field starts of the 4-byte fields, in order.
const FIELDS4: [i64; 14] = [8, 12, 16, 20, 24, 28, 32, 40, 44, 48, 52, 56, 60, 64];

fn sz(size: usize) -> &'static str {
    match size {
        1 => "b",
        2 => "h",
        4 => "w",
        _ => "dw",
    }
}

/// Reads `size` bytes at `off` of the context and returns `SK_PASS`.
fn read(off: i64, size: usize) -> String {
    format!("ldx{} %r2, [%r1+{off}]\nmov %r0, 1\nexit\n", sz(size))
}

/// Stores `size` bytes at `off` of the context.
fn write(off: i64, size: usize) -> String {
    format!("st{} [%r1+{off}], 0\nmov %r0, 1\nexit\n", sz(size))
}

fn accepted(src: &str) -> bool {
    let a = verify(src, &[], false);
    let b = verify(src, &[], true);
    assert_eq!(
        a.is_ok(),
        b.is_ok(),
        "modes disagree on\n{src}: {a:?} {b:?}"
    );
    a.is_ok()
}

fn rejected_with(src: &str, what: &str) {
    let (e, log) = verify(src, &[], false).expect_err(src);
    assert_eq!(e, Errno::EACCES, "{log}");
    assert!(log.contains(what), "{log}");
}

#[test]
fn sk01_sk02_sk_is_eight_bytes_and_a_socket_or_null() {
    setup();
    assert!(accepted(&read(0, 8)), "SK-01");
    for size in [1, 2, 4] {
        for off in (0..8).step_by(size) {
            rejected_with(&read(off, size), "invalid bpf_context access");
        }
    }
    // The pointer must be NULL-checked before it is dereferenced.
    let unchecked = "ldxdw %r2, [%r1+0]\nldxw %r3, [%r2+4]\nmov %r0, 1\nexit\n";
    rejected_with(unchecked, "invalid mem access 'sock_or_null'");
    let checked = "ldxdw %r2, [%r1+0]\njeq %r2, 0, +1\nldxw %r3, [%r2+4]\nmov %r0, 1\nexit\n";
    assert!(accepted(checked), "SK-01 with a NULL check");
}

#[test]
fn sk03_sk04_sk05_the_four_byte_fields() {
    setup();
    for f in FIELDS4 {
        assert!(accepted(&read(f, 4)), "SK-03 {f}");
        for (size, inner) in [(2, 0), (2, 2), (1, 0), (1, 1), (1, 2), (1, 3)] {
            assert!(accepted(&read(f + inner, size)), "SK-04 {f}+{inner}/{size}");
        }
        assert!(!accepted(&read(f, 8)), "SK-05 8-byte read at {f}");
    }
}

#[test]
fn sk06_sk07_sk08_remote_port_padding_and_the_legacy_read() {
    setup();
    for (off, size) in [(36, 1), (37, 1), (36, 2)] {
        assert!(accepted(&read(off, size)), "SK-06 {off}/{size}");
    }
    for (off, size) in [(38, 1), (39, 1), (38, 2)] {
        assert!(accepted(&read(off, size)), "SK-07 {off}/{size}");
    }
    assert!(accepted(&read(36, 4)), "SK-08");
    assert!(!accepted(&read(37, 2)), "misaligned");
    // Values: the port in network order, padding 0, the legacy read the port zero-extended.
    let out = out_map(1);
    let input = ctx(
        Proto::Tcp,
        "127.0.0.2:8008".parse().unwrap(),
        "127.0.0.1:7007".parse().unwrap(),
    );
    let port = 8008u16.to_be();
    for (off, size, want) in [
        (36, 2, port as u64),
        (36, 1, (port & 0xff) as u64),
        (37, 1, (port >> 8) as u64),
        (36, 4, port as u64),
        (38, 2, 0),
        (38, 1, 0),
        (39, 1, 0),
    ] {
        assert_eq!(read_value(out, off, size, &input), want, "{off}/{size}");
    }
}

#[test]
fn sk09_sk10_sk11_past_the_end_misaligned_and_writes() {
    setup();
    rejected_with(&read(72, 4), "invalid bpf_context access");
    rejected_with(&read(68, 4), "invalid bpf_context access");
    rejected_with(&read(1, 4), "invalid bpf_context access");
    rejected_with(&read(2, 4), "invalid bpf_context access");
    for (off, size) in [
        (0, 8),
        (0, 4),
        (0, 2),
        (0, 1),
        (72, 4),
        (8, 4),
        (36, 2),
        (60, 4),
    ] {
        assert!(!accepted(&write(off, size)), "SK-11 {off}/{size}");
    }
    let stx = "mov %r2, 0\nstxw [%r1+8], %r2\nmov %r0, 1\nexit\n";
    assert!(!accepted(stx), "SK-11 stx");
}

#[test]
fn sk12_the_return_value_is_sk_drop_or_sk_pass() {
    setup();
    assert!(accepted(&ret(0)) && accepted(&ret(1)));
    for v in [2, 0xffff_ffff] {
        let (e, log) = verify(&ret(v), &[], true).expect_err("SK-12");
        assert_eq!(e, Errno::EINVAL);
        assert!(log.contains("should have been in [0, 1]"), "{log}");
    }
    let unknown = "ldxw %r0, [%r1+8]\nexit\n";
    let (e, log) = verify(unknown, &[], true).expect_err("SK-12 unknown");
    assert_eq!(e, Errno::EINVAL);
    assert!(log.contains("should have been in [0, 1]"), "{log}");
    let bounded = "ldxw %r0, [%r1+8]\nand %r0, 1\nexit\n";
    assert!(accepted(bounded));
}

#[test]
fn sk13_expected_attach_type_is_mandatory() {
    setup();
    let insns = assemble(&ret(1)).unwrap();
    let plain = kbpf::ProgLoadAttr::new(kbpf::uapi::ProgType::SkLookup, &insns);
    assert_eq!(
        syscall::prog_load(&plain).err(),
        Some(Errno::EINVAL),
        "SK-13"
    );
    let xdp = plain.with_attach_type(kbpf::uapi::AttachType::Xdp);
    assert_eq!(syscall::prog_load(&xdp).err(), Some(Errno::EINVAL), "SK-13");
}

/// A program storing the `size`-byte read at `off` into `out[0]`.
fn reader(out: Fd, off: i64, size: usize) -> Fd {
    let src = format!(
        "mov %r6, %r1\nldx{} %r7, [%r6+{off}]\nstw [%r10-4], 0\nlddw %r1, {{m0}}\nmov %r2, %r10\n\
         add %r2, -4\ncall 1\njeq %r0, 0, +1\nstxdw [%r0+0], %r7\nmov %r0, 1\nexit\n",
        sz(size)
    );
    prog(&src, &[out])
}

fn read_value(out: Fd, off: i64, size: usize, input: &BpfSkLookup) -> u64 {
    let p = reader(out, off, size);
    let (rv, _) = test_run(p, input).unwrap();
    assert_eq!(rv, SK_PASS);
    syscall::close(p).unwrap();
    out_value(out)
}

fn out_value(out: Fd) -> u64 {
    super::support::out(out, 0) as u64
}

/// The bytes a program sees: the input as the test run rebuilds it (the other family's
/// addresses and `ingress_ifindex` zero, nothing selected; `family`, `protocol` and
/// `local_port` cut to 16 bits).
fn effective(c: &BpfSkLookup) -> [u8; 72] {
    let mut e = *c;
    e.family &= 0xffff;
    e.protocol &= 0xffff;
    e.local_port &= 0xffff;
    if e.family == 2 {
        e.remote_ip6 = [0; 4];
        e.local_ip6 = [0; 4];
    } else {
        e.remote_ip4 = 0;
        e.local_ip4 = 0;
    }
    e.ingress_ifindex = 0;
    e.cookie = 0;
    e.pad = 0;
    e.to_bytes()
}

#[test]
fn every_allowed_read_returns_the_uapi_bytes() {
    setup();
    let out = out_map(1);
    let progs: Vec<(i64, usize, Fd)> = allowed_reads()
        .into_iter()
        .map(|(off, size)| (off, size, reader(out, off, size)))
        .collect();
    let field = (
        prop_oneof![Just(2u32), Just(10u32)],
        any::<u16>(),
        any::<u32>(),
        any::<[u32; 4]>(),
        any::<u16>(),
        any::<u32>(),
        any::<[u32; 4]>(),
        any::<u16>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(
            &field,
            |(family, protocol, rip4, rip6, rport, lip4, lip6, lport)| {
                let input = BpfSkLookup {
                    family,
                    protocol: protocol as u32,
                    remote_ip4: rip4,
                    remote_ip6: rip6,
                    remote_port: rport,
                    local_ip4: lip4,
                    local_ip6: lip6,
                    local_port: lport as u32,
                    ..Default::default()
                };
                let want = effective(&input);
                for &(off, size, p) in &progs {
                    let (rv, _) = test_run(p, &input).unwrap();
                    prop_assert_eq!(rv, SK_PASS);
                    let mut bytes = [0u8; 8];
                    bytes[..size].copy_from_slice(&want[off as usize..off as usize + size]);
                    let expect = if (off, size) == (36, 4) {
                        // The legacy read: the port, zero-extended.
                        u16::from_ne_bytes([want[36], want[37]]) as u64
                    } else {
                        u64::from_ne_bytes(bytes)
                    };
                    prop_assert_eq!(out_value(out), expect, "read {}/{}", off, size);
                }
                Ok(())
            },
        )
        .unwrap();
    for (_, _, p) in progs {
        syscall::close(p).unwrap();
    }
}
