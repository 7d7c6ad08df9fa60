//! SK-25 … SK-34: two programs in one netns, run in attach order with the final run-array
//! rules (a remembered selection is put back before each program; a selection beats a drop;
//! a drop without one refuses). A client connects (TCP) or sends (UDP) to 127.0.0.1:7007,
//! where a server D is bound; "redir" programs assign server A (127.0.0.2:8008).

use super::support::*;
use super::{prog, setup};
use kbpf::Errno;
use kbpf::net::Proto;
use kbpf::syscall::{self, Fd};

#[derive(Clone, Copy, Debug)]
enum P {
    Pass,
    Drop,
    /// Assign A and pass.
    Redir,
    /// Assign B without REPLACE (recording the result in out[0]) and pass.
    RedirB,
    /// Assign NULL with REPLACE and pass.
    NullReplace,
}

fn source(p: P) -> String {
    match p {
        P::Pass => ret(SK_PASS),
        P::Drop => ret(SK_DROP),
        P::Redir => redir(0, 0),
        P::RedirB => format!("{}{}", prologue(), assign_body(1, 0, Some(0), SK_PASS)),
        P::NullReplace => format!(
            "mov %r2, 0\nmov %r3, {F_REPLACE}\ncall 124\n{}",
            ret(SK_PASS)
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    D,
    A,
    Refused,
}

fn run(proto: Proto, p1: P, p2: P) -> (Outcome, i64) {
    let ns_g = netns();
    let (ns, net) = ns_g.parts();
    let d = server(&net, proto, "127.0.0.1:7007".parse().unwrap(), false);
    let a = server(&net, proto, "127.0.0.2:8008".parse().unwrap(), false);
    let b = server(&net, proto, "127.0.0.2:8009".parse().unwrap(), false);
    let map = sockmap(2);
    store(map, 0, &a);
    store(map, 1, &b);
    let results = out_map(1);
    let progs: Vec<Fd> = [p1, p2]
        .iter()
        .map(|&p| prog(&source(p), &[map, results]))
        .collect();
    let links: Vec<Fd> = progs.iter().map(|&p| attach(p, ns)).collect();
    let got = deliver(&net, proto, None, "127.0.0.1:7007".parse().unwrap());
    let outcome = match got {
        Ok(c) if c == d.cookie() => Outcome::D,
        Ok(c) if c == a.cookie() => Outcome::A,
        Ok(c) => panic!("delivered to an unexpected socket {c}"),
        Err(e) => {
            assert_eq!(e, Errno::ECONNREFUSED);
            Outcome::Refused
        }
    };
    let recorded = out(results, 0);
    for fd in links.into_iter().chain(progs).chain([map, results]) {
        syscall::close(fd).unwrap();
    }
    (outcome, recorded)
}

fn both(p1: P, p2: P, want: Outcome, row: &str) {
    for proto in [Proto::Tcp, Proto::Udp] {
        assert_eq!(run(proto, p1, p2).0, want, "{row} {proto:?}");
    }
}

#[test]
fn sk25_pass_pass_is_the_regular_lookup() {
    setup();
    both(P::Pass, P::Pass, Outcome::D, "SK-25");
}

#[test]
fn sk26_sk27_sk28_a_drop_without_selection_refuses() {
    setup();
    both(P::Drop, P::Drop, Outcome::Refused, "SK-26");
    both(P::Pass, P::Drop, Outcome::Refused, "SK-27");
    both(P::Drop, P::Pass, Outcome::Refused, "SK-28");
}

#[test]
fn sk29_sk30_sk31_sk32_a_selection_wins() {
    setup();
    both(P::Pass, P::Redir, Outcome::A, "SK-29");
    both(P::Redir, P::Pass, Outcome::A, "SK-30");
    both(P::Drop, P::Redir, Outcome::A, "SK-31");
    both(P::Redir, P::Drop, Outcome::A, "SK-32");
}

#[test]
fn sk33_the_second_program_sees_the_first_selection() {
    setup();
    for proto in [Proto::Tcp, Proto::Udp] {
        let (o, recorded) = run(proto, P::Redir, P::RedirB);
        assert_eq!(o, Outcome::A, "SK-33 {proto:?}");
        assert_eq!(
            recorded,
            -(Errno::EEXIST.to_errno() as i64),
            "SK-33: EEXIST"
        );
    }
}

#[test]
fn sk34_a_later_null_cannot_cancel_a_remembered_selection() {
    setup();
    both(P::Redir, P::NullReplace, Outcome::A, "SK-34");
    // On its own, the NULL replace selects nothing: the regular lookup runs.
    both(P::Pass, P::NullReplace, Outcome::D, "SK-34 alone");
}
