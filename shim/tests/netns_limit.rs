//! The netns registry's limit (`kbpf::net::nsid`, [`MAX_NETNS`] numbers): creating one more
//! fails with `ENOSPC` and changes nothing, and the numbers come back when the namespaces exit.
//! Its own binary with one test: it fills the registry, which would make a test creating a
//! netns beside it fail.

use kbpf::Errno;
use kbpf::net::nsid::{self, MAX_NETNS};
use kbpf::net::{self, Net};
use kbpf::syscall;

#[test]
fn creating_past_max_netns_is_enospc_and_changes_nothing() {
    kbpf_shim::host::install();
    let before = nsid::list();
    assert!(before.contains(&nsid::INIT_NET));
    let mut handles = Vec::new();
    let err = loop {
        match net::fd::netns_create() {
            Ok(fd) => handles.push(fd),
            Err(e) => break e,
        }
        assert!(handles.len() <= MAX_NETNS, "more namespaces than numbers");
    };
    assert_eq!(err, Errno::ENOSPC);
    assert_eq!(before.len() + handles.len(), MAX_NETNS);
    let full = nsid::list();
    assert_eq!(full.len(), MAX_NETNS);
    // Neither way of creating one takes a number or a handle when none is left.
    let probe =
        syscall::map_create(&kbpf::MapAttr::new(kbpf::uapi::MapType::Array, 4, 8, 1)).unwrap();
    assert_eq!(net::fd::netns_create().err(), Some(Errno::ENOSPC));
    assert_eq!(Net::create().err(), Some(Errno::ENOSPC));
    assert_eq!(nsid::list(), full, "a failed create changes nothing");
    let next =
        syscall::map_create(&kbpf::MapAttr::new(kbpf::uapi::MapType::Array, 4, 8, 1)).unwrap();
    assert_eq!(next, probe + 1, "no handle was taken");
    syscall::close(next).unwrap();
    syscall::close(probe).unwrap();
    // Every handle closed: every number is free again.
    for fd in handles {
        syscall::close(fd).unwrap();
    }
    assert_eq!(nsid::list(), before);
    let fd = net::fd::netns_create().expect("a number is free again");
    syscall::close(fd).unwrap();
    assert_eq!(nsid::list(), before);
}
