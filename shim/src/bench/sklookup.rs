//! `kbpf bench sklookup`: the cost of sk_lookup programs, measured as the oracle's
//! `sklookup-bench` measures the host kernel's (`../shared/oracle/sklookup_bench.c`, whose
//! programs [`steer`] rebuilds instruction for instruction), and of the netns lookup path with
//! 0, 1 and 4 attached programs.
//!
//! * Test runs (`BPF_PROG_TEST_RUN`, a one-program run array per run, as the kernel's): `pass`
//!   (`return SK_PASS`); `steer` on a matching destination (192.0.2.55:80: a /24 and port
//!   test, a SOCKMAP lookup, `bpf_sk_assign`, `bpf_sk_release`); `steer` on a non-matching one
//!   (192.0.3.55:80: the prefix test alone); `noassign` (the match without the assign).
//! * Lookups (`net::lookup`, TCP 198.51.100.7:40000 → 192.0.5.55:80): with no program (a
//!   listener bound there answers), then 1 and 4 programs that each test one /24 prefix, the
//!   last matching one assigning the listener from a SOCKMAP; `per_prog_ns` is what each
//!   further program adds.
//!
//! JSON keys: `pass_ns`, `assign_ns` (the matching `steer`), `per_prog_ns`, plus
//! `nomatch_ns`, `noassign_ns` and `lookup_ns` (by program count).

use super::{json_map, json_num};
use kbpf::cpu::CpuGuard;
use kbpf::insn::{
    Insn, Size, alu32_imm, alu64_imm, call_helper, exit, jmp_imm, ld_map_fd, ldx_mem, mov64_imm,
    mov64_reg, st_mem,
};
use kbpf::net::sk_lookup::ctx::{BpfSkLookup, off};
use kbpf::net::{self, Family, Proto, Tuple};
use kbpf::syscall::{self, Fd, Object, TestRun};
use kbpf::uapi::{AttachType, MapType, ProgType, alu, func, jmp};
use kbpf::{MapAttr, ProgLoadAttr};
use std::io::Write;
use std::time::Instant;

/// `SK_PASS`, `SK_DROP`.
const SK_PASS: i32 = 1;
const SK_DROP: i32 = 0;

/// 192.0.2.0/24, the steered prefix, as a network-order `u32` in memory.
pub const PREFIX: [u8; 4] = [192, 0, 2, 0];
/// The steered port.
pub const DPORT: i32 = 80;

fn be_word(a: [u8; 4]) -> i32 {
    u32::from_ne_bytes(a) as i32
}

/// `return SK_PASS`.
pub fn pass() -> Vec<Insn> {
    vec![mov64_imm(0, SK_PASS), exit()]
}

/// The oracle's `steer` (with `assign`) or `noassign` program: if the local address is in
/// `prefix`/24 and the local port is `port`, look `map[0]` up, assign it (unless not
/// `assign`), release it, and return `SK_PASS` (`SK_DROP` when the assign failed); else
/// `SK_PASS`. `map` is the handle the program's `ld_imm64` carries.
pub fn steer(map: u32, assign: bool, prefix: [u8; 4], port: i32) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::W, 2, 6, off::LOCAL_IP4 as i16),
        alu32_imm(alu::AND, 2, be_word([255, 255, 255, 0])),
    ];
    let j_ip = p.len();
    p.push(jmp_imm(jmp::JNE, 2, be_word(prefix), 0));
    p.push(ldx_mem(Size::W, 2, 6, off::LOCAL_PORT as i16));
    let j_port = p.len();
    p.push(jmp_imm(jmp::JNE, 2, port, 0));
    p.push(st_mem(Size::W, 10, -4, 0));
    p.extend(ld_map_fd(1, map));
    p.extend([mov64_reg(2, 10), alu64_imm(alu::ADD, 2, -4)]);
    p.push(call_helper(func::MAP_LOOKUP_ELEM));
    let j_null = p.len();
    p.push(jmp_imm(jmp::JEQ, 0, 0, 0));
    p.extend([mov64_reg(7, 0), mov64_imm(8, 0)]);
    if assign {
        p.extend([
            mov64_reg(1, 6),
            mov64_reg(2, 7),
            mov64_imm(3, 0),
            call_helper(func::SK_ASSIGN),
            mov64_reg(8, 0),
        ]);
    }
    p.extend([
        mov64_reg(1, 7),
        call_helper(func::SK_RELEASE),
        mov64_imm(0, SK_PASS),
        jmp_imm(jmp::JEQ, 8, 0, 1),
        mov64_imm(0, SK_DROP),
        exit(),
    ]);
    let out = p.len() as i16;
    for j in [j_ip, j_port, j_null] {
        p[j].off = out - j as i16 - 1;
    }
    p.extend([mov64_imm(0, SK_PASS), exit()]);
    p
}

/// The oracle's inputs: TCP 198.51.100.7:40000 → `dst`:80 (192.0.2.55 matches, 192.0.3.55
/// does not).
pub fn input(dst: [u8; 4]) -> BpfSkLookup {
    BpfSkLookup {
        family: 2,
        protocol: 6,
        remote_ip4: u32::from_ne_bytes([198, 51, 100, 7]),
        remote_port: 40000u16.to_be(),
        local_ip4: u32::from_ne_bytes(dst),
        local_port: DPORT as u32,
        ..Default::default()
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct SklookupReport {
    /// `pass`, ns per test run.
    pub pass_ns: f64,
    /// `steer` on a matching destination.
    pub assign_ns: f64,
    /// `steer` on a non-matching destination.
    pub nomatch_ns: f64,
    /// `noassign` on a matching destination.
    pub noassign_ns: f64,
    /// Whether `steer` selected the listener (its cookie came back).
    pub selected: bool,
    /// `(programs attached, ns per lookup)`.
    pub lookup_ns: Vec<(usize, f64)>,
    /// What each program adds to a lookup: `(t(4) - t(1)) / 3`.
    pub per_prog_ns: f64,
}

fn load(insns: &[Insn], name: &str) -> kbpf::Result<Fd> {
    let attr = ProgLoadAttr::new(ProgType::SkLookup, insns)
        .with_attach_type(AttachType::SkLookup)
        .with_name(name);
    syscall::prog_load(&attr)
}

/// Best mean wall-clock ns per run over `trials` test runs of `repeat` runs of `fd` on `ctx`;
/// and the cookie the last run left.
pub fn test_run_ns(
    fd: Fd,
    ctx: &BpfSkLookup,
    repeat: u32,
    trials: u32,
) -> kbpf::Result<(f64, u64)> {
    let bytes = ctx.to_bytes();
    let mut best = f64::INFINITY;
    let mut cookie = 0;
    let mut run = |n: u32| -> kbpf::Result<f64> {
        let mut out = [0u8; 72];
        let t = Instant::now();
        syscall::prog_test_run(
            fd,
            &mut TestRun {
                ctx_in: Some(&bytes),
                ctx_out: Some(&mut out),
                repeat: n,
                ..Default::default()
            },
        )?;
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        cookie = BpfSkLookup::from_bytes(&out).cookie;
        Ok(ns)
    };
    run((repeat / 20).max(1))?;
    for _ in 0..trials {
        best = best.min(run(repeat)?);
    }
    Ok((best, cookie))
}

/// Measures (see the module docs); `repeat` runs per trial.
pub fn measure(repeat: u32, trials: u32) -> kbpf::Result<SklookupReport> {
    let ns = net::fd::netns_create()?;
    let n = net::fd::netns_get(ns)?;
    let listener = net::socket(&n, Family::Inet, Proto::Tcp)?;
    listener.bind("127.0.0.1:0".parse().expect("an address"))?;
    listener.listen(16)?;
    let listener = kbpf::sync::Arc::new(listener);
    let cookie = listener.cookie();
    let lfd = syscall::install_object(Object::Sock(listener))?;
    let map = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 1))?;
    syscall::map_update_elem(map, &0u32.to_ne_bytes(), &(lfd as u64).to_ne_bytes(), 0)?;

    let pass_fd = load(&pass(), "skl_pass")?;
    let steer_fd = load(&steer(map, true, PREFIX, DPORT), "skl_steer")?;
    let noassign_fd = load(&steer(map, false, PREFIX, DPORT), "skl_noassign")?;
    let hit = input([192, 0, 2, 55]);
    let other = input([192, 0, 3, 55]);
    let (pass_ns, _) = test_run_ns(pass_fd, &hit, repeat, trials)?;
    let (assign_ns, got) = test_run_ns(steer_fd, &hit, repeat, trials)?;
    let (nomatch_ns, _) = test_run_ns(steer_fd, &other, repeat, trials)?;
    let (noassign_ns, _) = test_run_ns(noassign_fd, &hit, repeat, trials)?;

    // The lookup path: a listener at the destination for the no-program case, and programs
    // testing 192.0.2/24 .. 192.0.5/24, the destination in the last.
    let web = net::socket(&n, Family::Inet, Proto::Tcp)?;
    web.bind("192.0.5.55:80".parse().expect("an address"))?;
    web.listen(16)?;
    let t = Tuple::new(
        Proto::Tcp,
        "198.51.100.7:40000".parse().expect("an address"),
        "192.0.5.55:80".parse().expect("an address"),
    )?;
    let lookup = |n: &net::Net| {
        let mut g = CpuGuard::enter();
        let mut best = f64::INFINITY;
        for _ in 0..trials {
            let start = Instant::now();
            for _ in 0..repeat {
                std::hint::black_box(net::lookup(n, &mut g, std::hint::black_box(&t)).sock());
            }
            best = best.min(start.elapsed().as_nanos() as f64 / repeat as f64);
        }
        best
    };
    let mut lookup_ns = vec![(0, lookup(&n))];
    let mut progs = Vec::new();
    let mut links = Vec::new();
    for count in [1usize, 4] {
        for fd in links.drain(..) {
            syscall::close(fd)?;
        }
        for i in 0..count {
            let prefix = [192, 0, (6 - count + i) as u8, 0];
            let fd = load(&steer(map, true, prefix, DPORT), "skl_prefix")?;
            links.push(net::sk_lookup::link::link_create(fd, ns, 0)?);
            progs.push(fd);
        }
        lookup_ns.push((count, lookup(&n)));
    }
    let per_prog_ns = (lookup_ns[2].1 - lookup_ns[1].1) / 3.0;
    for fd in links.into_iter().chain(progs) {
        syscall::close(fd)?;
    }
    for fd in [pass_fd, steer_fd, noassign_fd, map, lfd, ns] {
        syscall::close(fd)?;
    }
    Ok(SklookupReport {
        pass_ns,
        assign_ns,
        nomatch_ns,
        noassign_ns,
        selected: got == cookie,
        lookup_ns,
        per_prog_ns,
    })
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(
    r: &SklookupReport,
    engine: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "sk_lookup, engine {engine}: BPF_PROG_TEST_RUN ns per run (the oracle's programs)"
    )?;
    writeln!(
        out,
        "  pass: return SK_PASS                           {:8.2}",
        r.pass_ns
    )?;
    writeln!(
        out,
        "  steer, 192.0.2.55:80 (lookup + assign + release) {:8.2}  {}",
        r.assign_ns,
        if r.selected {
            "cookie = listener"
        } else {
            "NO SELECTION"
        }
    )?;
    writeln!(
        out,
        "  steer, 192.0.3.55:80 (prefix test fails)       {:8.2}",
        r.nomatch_ns
    )?;
    writeln!(
        out,
        "  noassign, 192.0.2.55:80 (lookup + release)     {:8.2}",
        r.noassign_ns
    )?;
    writeln!(
        out,
        "netns lookup path, TCP 198.51.100.7:40000 -> 192.0.5.55:80"
    )?;
    for (n, ns) in &r.lookup_ns {
        writeln!(out, "  {n} programs: {ns:8.2} ns per lookup")?;
    }
    writeln!(out, "  each further program: {:.2} ns", r.per_prog_ns)?;
    if json {
        let j = serde_json::json!({
            "engine": engine,
            "pass_ns": json_num(r.pass_ns),
            "assign_ns": json_num(r.assign_ns),
            "per_prog_ns": json_num(r.per_prog_ns),
            "nomatch_ns": json_num(r.nomatch_ns),
            "noassign_ns": json_num(r.noassign_ns),
            "selected": r.selected,
            "lookup_ns": json_map(&r.lookup_ns, |_, v| v),
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
