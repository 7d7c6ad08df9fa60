//! NAT set-up on an entry before insertion: `bpf_ct_set_nat_info` (`net/netfilter/nf_nat_bpf.c`)
//! over `nf_nat_setup_info` (`net/netfilter/nf_nat_core.c`) for a range of one address and, with
//! a positive port, one port.
//!
//! Source NAT rewrites where replies go (the reply tuple's destination), destination NAT where
//! they come from (its source): the tuple of the original direction, with the manipulated side
//! replaced, is inverted into the new reply tuple; `IPS_SRC_NAT`/`IPS_DST_NAT` mark a change
//! and `IPS_SRC_NAT_DONE`/`IPS_DST_NAT_DONE` that the manipulation is set up. Setting one up
//! twice is refused as Linux's `NF_DROP` is (`ENOMEM` from the kfunc). kbpf keeps no
//! by-source table and does not search for a free port: the given one is used.

use super::conn::{Conn, status};
use super::tuple::{AF_INET, AF_INET6};
use crate::{Errno, Result};

/// `NF_NAT_MANIP_SRC`.
pub const MANIP_SRC: u32 = 0;
/// `NF_NAT_MANIP_DST`.
pub const MANIP_DST: u32 = 1;

/// Sets up source (`manip` 0) or destination NAT to `addr` (a `union nf_inet_addr`: IPv4 in
/// its first four bytes) and, when `port` > 0, that port (host order, cut to 16 bits as
/// `cpu_to_be16` does). `EINVAL` for an entry that is neither IPv4 nor IPv6, `ENOMEM` when
/// this manipulation is already set up. Any `manip` other than 0 is destination NAT, as
/// `nf_nat_setup_info` treats it.
///
/// The caller owns the unconfirmed entry alone (it came from an `alloc` kfunc).
pub fn set_nat_info(ct: &mut Conn, addr: &[u8; 16], port: i32, manip: u32) -> Result {
    let l3num = ct.tuple(0).src.l3num;
    let alen = match l3num {
        AF_INET => 4,
        AF_INET6 => 16,
        _ => return Err(Errno::EINVAL),
    };
    if ct.is_confirmed() {
        // Linux: "Can't setup nat info for confirmed ct" (NF_ACCEPT).
        return Ok(());
    }
    let src = manip == MANIP_SRC;
    let done = if src {
        status::SRC_NAT_DONE
    } else {
        status::DST_NAT_DONE
    };
    if ct.status() & done != 0 {
        return Err(Errno::ENOMEM);
    }
    // What the entry looks like now from the original side: the inverse of its reply.
    let curr = ct.tuple(1).invert()?;
    let mut new = curr;
    let (u3, u) = if src {
        (&mut new.src.u3, &mut new.src.u)
    } else {
        (&mut new.dst.u3, &mut new.dst.u)
    };
    u3[..alen].copy_from_slice(&addr[..alen]);
    if port > 0 {
        *u = (port as u16).to_be_bytes();
    }
    if !new.same_flow(&curr) {
        ct.set_reply(new.invert()?);
        ct.set_status_bits(if src {
            status::SRC_NAT
        } else {
            status::DST_NAT
        });
    }
    ct.set_status_bits(done);
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::netfilter::conn::{ConnInit, HZ};
    use crate::netfilter::tuple::{IPPROTO_TCP, Tuple, Zone};
    use alloc::string::ToString;

    #[test]
    fn snat_then_dnat_rewrite_the_reply_tuple() {
        let orig = Tuple::new(&[10, 0, 0, 1], &[10, 0, 0, 2], 1000, 80, IPPROTO_TCP).unwrap();
        let mut c = Conn::new(&ConnInit {
            net: 0,
            zone: Zone::DEFAULT,
            orig,
            reply: orig.invert().unwrap(),
            timeout: HZ,
        });
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[192, 168, 1, 1]);
        assert_eq!(set_nat_info(&mut c, &a, 4321, MANIP_SRC), Ok(()));
        a[..4].copy_from_slice(&[192, 168, 2, 2]);
        assert_eq!(set_nat_info(&mut c, &a, 8080, MANIP_DST), Ok(()));
        assert_eq!(
            c.tuple(1).to_string(),
            "src=192.168.2.2 dst=192.168.1.1 sport=8080 dport=4321"
        );
        let want = status::SRC_NAT | status::DST_NAT | status::SRC_NAT_DONE | status::DST_NAT_DONE;
        assert_eq!(c.status(), want);
        assert_eq!(set_nat_info(&mut c, &a, 1, MANIP_DST), Err(Errno::ENOMEM));
        assert_eq!(c.tuple(0), &orig, "the original tuple stays");
    }
}
