//! `bpf_sk_assign(ctx, sk, flags)` as sk_lookup programs call it (`bpf_sk_lookup_assign`,
//! `net/core/filter.c`): records `sk` as the lookup's result.
//!
//! The checks, in the final kernel's order: flags other than `BPF_SK_LOOKUP_F_REPLACE` and
//! `BPF_SK_LOOKUP_F_NO_REUSEPORT` (`EINVAL`); a reference-counted socket, i.e. one not freed
//! by RCU (`ESOCKTNOSUPPORT`); a TCP socket not listening or a UDP socket not unconnected
//! (`ESOCKTNOSUPPORT`); another protocol than the lookup's (`EPROTOTYPE`); another family,
//! unless a dual-stack IPv6 socket takes an IPv4 lookup (`EAFNOSUPPORT`); a selection already
//! made without `REPLACE` (`EEXIST`). NULL is allowed and clears the selection.

use super::ctx::SkLookupKern;
use crate::Errno;
use crate::net::addr::{Family, Proto};
use crate::net::sock::{Sock, state};

/// `BPF_SK_LOOKUP_F_REPLACE`: replace an earlier selection.
pub const F_REPLACE: u64 = 1 << 0;
/// `BPF_SK_LOOKUP_F_NO_REUSEPORT`: skip reuseport group selection for this socket.
pub const F_NO_REUSEPORT: u64 = 1 << 1;

/// The checks and the selection (see the module docs).
pub fn assign(ctx: &mut SkLookupKern, sk: Option<&Sock>, flags: u64) -> Result<(), Errno> {
    if flags & !(F_REPLACE | F_NO_REUSEPORT) != 0 {
        return Err(Errno::EINVAL);
    }
    if let Some(sk) = sk {
        if sk.is_refcounted() {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        let wanted = match sk.proto() {
            Proto::Tcp => state::LISTEN,
            Proto::Udp => state::CLOSE,
        };
        if sk.state() != wanted {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        if sk.proto() as u16 != ctx.protocol {
            return Err(Errno::EPROTOTYPE);
        }
        if sk.family() as u16 != ctx.family && (sk.family() == Family::Inet || sk.v6only()) {
            return Err(Errno::EAFNOSUPPORT);
        }
    }
    if !ctx.selected_sk.is_null() && flags & F_REPLACE == 0 {
        return Err(Errno::EEXIST);
    }
    ctx.selected_sk = sk.map_or(core::ptr::null(), |s| s as *const Sock);
    ctx.no_reuseport = (flags & F_NO_REUSEPORT != 0) as u32;
    Ok(())
}

/// The helper's machine side: R1 the context, R2 a socket or NULL, R3 the flags.
pub(crate) unsafe extern "C" fn sk_lookup_assign(
    ctx: u64,
    sk: u64,
    flags: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: the verifier proved R1 is the program's context, an `SkLookupKern` that this
    // run owns, and R2 a socket pointer or NULL; a socket a program holds is alive for the
    // whole read-side section the run is in.
    let (ctx, sk) = unsafe {
        (
            &mut *(ctx as *mut SkLookupKern),
            (sk as *const Sock).as_ref(),
        )
    };
    match assign(ctx, sk, flags) {
        Ok(()) => 0,
        Err(e) => e.to_neg() as u64,
    }
}

/// `bpf_sk_release(sk)`: puts the reference a lookup took, if the socket is one that lookups
/// count (`sk_is_refcounted`); RCU-freed sockets were never counted.
pub(crate) unsafe extern "C" fn sk_release(sk: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 is a socket the program holds a reference to (acquired
    // by a lookup, not yet released), alive for the run's section.
    unsafe { crate::net::sock::sock_pfree(sk as *const Sock) };
    0
}
