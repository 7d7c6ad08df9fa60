//! kernel-scenarios.md §1.7 (final mprog rules through tcx) as scripts in the oracle's language:
//! each row is an operation and the result the final kernel gives (errno, order, revision).

use kbpf_shim::tcx_script::{Options, run_script};

/// Runs `rows` (operation, expected result) on ingress and on egress.
fn check(rows: &[(&str, &str)]) {
    kbpf_shim::host::install();
    let script: String = rows.iter().map(|(op, _)| format!("{op}\n")).collect();
    for egress in [false, true] {
        let opts = Options {
            egress,
            ..Options::default()
        };
        let got = run_script(&script, opts).unwrap();
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got.len(), rows.len());
        for ((op, want), got) in rows.iter().zip(got) {
            assert_eq!(got, *want, "`{op}` (egress: {egress})");
        }
    }
}

#[test]
fn basic_order_and_revision() {
    // MP-04, MP-05, MP-06..MP-10.
    check(&[
        ("load 4", "OK"),
        ("query", "OK rev=1 count=0 progs=- links=-"),
        ("attach 1 0 0 1", "OK"),
        ("query", "OK rev=2 count=1 progs=1 links=0"),
        ("attach 2 0 0 0", "OK"),
        ("attach 3 before 2 0", "OK"),
        ("query", "OK rev=4 count=3 progs=1,3,2 links=0,0,0"),
        ("attach 4 before,id 1 0", "OK"),
        ("query", "OK rev=5 count=4 progs=4,1,3,2 links=0,0,0,0"),
        ("detach 4 0 0 0", "OK"),
        ("detach 3 0 0 0", "OK"),
        ("query", "OK rev=7 count=2 progs=1,2 links=0,0"),
    ]);
}

#[test]
fn prepend_append_and_revision_checks() {
    // MP-11, MP-12, MP-13..MP-18.
    check(&[
        ("load 7", "OK"),
        ("attach 1 0 0 1", "OK"),
        ("attach 2 before 0 0", "OK"),
        ("attach 3 before 0 0", "OK"),
        ("attach 4 after 0 0", "OK"),
        ("attach 5 after 0 0", "OK"),
        ("query", "OK rev=6 count=5 progs=3,2,1,4,5 links=0,0,0,0,0"),
        ("attach 6 0 0 1", "ESTALE"),
        ("attach 6 0 0 6", "OK"),
        ("detach 6 0 0 6", "ESTALE"),
        (
            "query",
            "OK rev=7 count=6 progs=3,2,1,4,5,6 links=0,0,0,0,0,0",
        ),
        ("detach 6 0 0 7", "OK"),
        ("attach 7 0 0 0", "OK"),
        (
            "query",
            "OK rev=9 count=6 progs=3,2,1,4,5,7 links=0,0,0,0,0,0",
        ),
    ]);
}

#[test]
fn replace_rules() {
    // MP-19..MP-28.
    check(&[
        ("load 4", "OK"),
        ("attach 1 0 0 0", "OK"),
        ("attach 2 before,id 1 2", "OK"),
        ("attach 3 replace 0 3 2", "OK"),
        ("query", "OK rev=4 count=2 progs=3,1 links=0,0"),
        ("attach 2 replace,before 1 4 3", "OK"),
        ("attach 2 replace 0 0 2", "EEXIST"),
        ("attach 3 replace,after 1 0 2", "ERANGE"),
        ("attach 3 replace,before,after 1 0 2", "ERANGE"),
        ("attach 3 replace 0 0 4", "ENOENT"),
        ("detach 2 replace 0 0", "EINVAL"),
        ("detach 2 before,id 1 5", "OK"),
        ("query", "OK rev=6 count=1 progs=1 links=0"),
        ("attach 1 replace 1 0 0", "EINVAL"),
        ("attach 1 replace 0 0 1", "EEXIST"),
    ]);
}

#[test]
fn invalid_attach_requests() {
    // MP-29..MP-42.
    check(&[
        ("load 2", "OK"),
        ("attach 1 before,after 0 0", "ERANGE"),
        ("attach 1 before,id 0 0", "ENOENT"),
        ("attach 1 after,id 0 0", "ENOENT"),
        ("attach 1 0 2 0", "EINVAL"),
        ("attach 1 before,after 2 0", "ENOENT"),
        ("attach 1 id 2 0", "EINVAL"),
        ("attach 1 before 1 0", "ENOENT"),
        ("attach 1 after 1 0", "ENOENT"),
        ("attach 1 0x40 0 0", "EINVAL"),
        ("attach 1 0x40000000 0 0", "EINVAL"),
        ("query", "OK rev=1 count=0 progs=- links=-"),
        ("attach 1 0 0 0", "OK"),
        ("attach 1 0 0 0", "EEXIST"),
        ("attach 1 before 1 0", "EEXIST"),
        ("attach 1 after 1 0", "EEXIST"),
        ("query", "OK rev=2 count=1 progs=1 links=0"),
    ]);
}

#[test]
fn detach_rules() {
    // MP-43..MP-59, MP-63.
    check(&[
        ("load 4", "OK"),
        ("attach 1 0 0 0", "OK"),
        ("attach 2 0 0 0", "OK"),
        ("attach 3 0 0 0", "OK"),
        ("attach 4 0 0 0", "OK"),
        ("detach 1 before 2 0", "OK"),
        ("detach 1 before 2 0", "ENOENT"),
        ("detach 2 before 4 0", "ERANGE"),
        ("detach 2 before 1 0", "ENOENT"),
        ("detach 2 before 3 0", "OK"),
        ("detach 0 before 4 0", "OK"),
        ("query", "OK rev=8 count=1 progs=4 links=0"),
        ("detach 0 before 0 0", "OK"),
        ("detach 0 before 0 0", "ENOENT"),
        ("detach 0 after 0 0", "ENOENT"),
        ("attach 1 0 0 0", "OK"),
        ("attach 2 0 0 0", "OK"),
        ("attach 3 0 0 0", "OK"),
        ("detach 1 after 3 0", "ERANGE"),
        ("detach 3 after 2 0", "OK"),
        ("detach 0 after 1 0", "OK"),
        ("query", "OK rev=6 count=1 progs=1 links=0"),
        ("attach 2 0 0 0", "OK"),
        ("detach 0 0 0 0", "OK"),
        ("query", "OK rev=8 count=1 progs=1 links=0"),
    ]);
}

#[test]
fn mixing_programs_and_links() {
    // MP-60, MP-61, MP-62, MP-64..MP-70.
    check(&[
        ("load 4", "OK"),
        ("attach 1 0 0 0", "OK"),
        ("link 2 0 0 0", "OK link=1"),
        ("attach 2 replace 0 0 1", "EEXIST"),
        ("attach 1 replace 0 0 2", "EEXIST"),
        ("attach 3 replace 0 0 2", "EBUSY"),
        ("detach 2 0 0 0", "EBUSY"),
        ("detach 0 after 0 0", "EBUSY"),
        ("attach 3 replace 0 0 1", "OK"),
        ("link 4 0 0 0", "OK link=2"),
        ("attach 2 replace 0 0 4", "EEXIST"),
        ("query", "OK rev=5 count=3 progs=3,2,4 links=0,1,2"),
        ("detach 0 before 0 0", "OK"),
        ("linkclose 1", "OK"),
        ("linkclose 2", "OK"),
        ("query", "OK rev=1 count=0 progs=- links=-"),
    ]);
}

#[test]
fn capacity_is_63_programs() {
    // MP-28, MP-71..MP-75.
    let mut rows: Vec<(String, String)> = vec![("load 65".into(), "OK".into())];
    for p in 1..=63 {
        rows.push((format!("attach {p} 0 0 0"), "OK".into()));
    }
    for op in [
        "attach 64 0 0 0",
        "attach 64 before 0 0",
        "attach 64 before 63 0",
        "attach 64 after 63 0",
        "attach 64 after 0 0",
    ] {
        rows.push((op.into(), "ERANGE".into()));
    }
    rows.push(("attach 64 replace 0 0 63".into(), "OK".into()));
    rows.push((
        "query 1".into(),
        "ENOSPC rev=65 count=63 progs=1 links=0".into(),
    ));
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    check(&rows);
}

#[test]
fn tcx_links() {
    // MP-84..MP-108 (link creation rules, update, detach).
    check(&[
        ("load 4", "OK"),
        ("link 1 0 0 1", "OK link=1"),
        ("link 2 0 0 1", "ESTALE"),
        ("link 2 0 0 2", "OK link=2"),
        ("link 3 replace 2 0", "ENOENT"),
        ("link 3 replace,link 2 0", "ENOENT"),
        ("link 3 before,after 0 0", "ERANGE"),
        ("link 3 link 1 0", "EINVAL"),
        ("link 3 link 0 0", "EINVAL"),
        ("link 3 0 2 0", "EINVAL"),
        ("link 3 before 3 0", "ENOENT"),
        ("link 3 before,link =4294967295 0", "EBADF"),
        ("link 3 before,link,id =4294967295 0", "ENOENT"),
        ("link 1 before,link,id 1 0", "EEXIST"),
        ("link 3 before 2 0", "OK link=3"),
        ("link 4 before,link,id 1 0", "OK link=4"),
        ("query", "OK rev=5 count=4 progs=4,1,3,2 links=4,1,3,2"),
        ("linkupdate 2 1", "EEXIST"),
        ("linkupdate 2 2 1", "EPERM"),
        ("linkupdate 2 2", "OK"),
        ("query", "OK rev=5 count=4 progs=4,1,3,2 links=4,1,3,2"),
        ("linkdetach 3", "OK"),
        ("linkdetach 3", "OK"),
        ("linkupdate 3 2", "ENOLINK"),
        ("attach 3 0 0 0", "OK"),
        ("linkupdate 1 3", "EEXIST"),
        ("query", "OK rev=7 count=4 progs=4,1,2,3 links=4,1,2,0"),
    ]);
}
