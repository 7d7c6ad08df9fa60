//! Sockets and network namespaces behind handles, as the `bpf(2)`-shaped facade and the CLI
//! use them: a socket handle is what a socket map stores (the fd `BPF_MAP_UPDATE_ELEM` takes),
//! a netns handle what an sk_lookup link attaches to (`target_fd`).

use super::addr::{Family, Proto};
use super::netns::{Net, init_net};
use super::socket::{Socket, socket as new_socket};
use crate::sync::Arc;
use crate::syscall::{self, Fd, Object};
use crate::{Errno, Result};

/// Creates a network namespace and returns a handle to it (`unshare(CLONE_NEWNET)` + opening
/// `/proc/self/ns/net`); `ENOSPC` when [`super::nsid::MAX_NETNS`] exist. The netns exits when
/// its last handle and socket are gone.
pub fn netns_create() -> Result<Fd> {
    let net = Net::create()?;
    syscall::install_object(Object::Netns(net.clone())).inspect_err(|_| net.exit())
}

/// Gives the netns behind `fd` the id programs name it by in `netns_id` (`RTM_NEWNSID`; see
/// [`super::nsid::set_id`] for the errnos).
pub fn netns_set_id(fd: Fd, id: i32) -> Result {
    netns_get(fd)?.set_id(id)
}

/// A handle to the initial netns.
pub fn netns_init() -> Result<Fd> {
    syscall::install_object(Object::Netns(init_net().clone()))
}

/// The netns behind `fd` (`EBADF` if none, `EINVAL` if it is something else).
pub fn netns_get(fd: Fd) -> Result<Arc<Net>> {
    super::sk_lookup::link::net_get(fd)
}

/// `socket(2)` in the netns behind `netns` (the initial one for `None`): a handle.
pub fn socket(netns: Option<Fd>, family: Family, proto: Proto) -> Result<Fd> {
    let net = match netns {
        Some(fd) => netns_get(fd)?,
        None => init_net().clone(),
    };
    let s = new_socket(&net, family, proto)?;
    syscall::install_object(Object::Sock(Arc::new(s)))
}

/// The socket behind `fd` (`EBADF` if none, `ENOTSOCK` if it is something else).
pub fn sock_get(fd: Fd) -> Result<Arc<Socket>> {
    match syscall::get(fd) {
        Ok(Object::Sock(s)) => Ok(s),
        Ok(_) | Err(Errno::EINVAL) => Err(Errno::ENOTSOCK),
        Err(e) => Err(e),
    }
}

/// `accept(2)` on the listener behind `fd`: a handle to the connection.
pub fn accept(fd: Fd) -> Result<Fd> {
    let s = sock_get(fd)?.accept()?;
    syscall::install_object(Object::Sock(Arc::new(s)))
}
