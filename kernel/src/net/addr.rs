//! Families, protocols and addresses as the socket tables key them (`AF_INET`/`AF_INET6`,
//! `IPPROTO_TCP`/`IPPROTO_UDP`, `struct sockaddr_in`/`sockaddr_in6` in
//! `include/uapi/linux/in.h` and `in6.h`).
//!
//! An [`Addr`] is 16 bytes in network order with IPv4 addresses in their v4-mapped form
//! (`::ffff:a.b.c.d`): what a dual-stack IPv6 socket sees of an IPv4 peer, so one comparison
//! serves both families. Which sockets an address reaches is [`local_match`] (the address half
//! of `compute_score` in `net/ipv4/inet_hashtables.c`, `inet6_hashtables.c` and `udp.c`).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u32 = 2;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Family {
    /// `AF_INET`.
    Inet = AF_INET,
    /// `AF_INET6`.
    Inet6 = AF_INET6,
}

impl Family {
    /// The family numbered `v`, if it is one kbpf's sockets have.
    pub fn from_raw(v: u32) -> Option<Family> {
        match v {
            2 => Some(Family::Inet),
            10 => Some(Family::Inet6),
            _ => None,
        }
    }

    /// The family of a socket address.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::Inet,
            SocketAddr::V6(_) => Family::Inet6,
        }
    }

    /// `"inet"` or `"inet6"`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    /// `IPPROTO_TCP`, a `SOCK_STREAM` socket.
    Tcp = IPPROTO_TCP,
    /// `IPPROTO_UDP`, a `SOCK_DGRAM` socket.
    Udp = IPPROTO_UDP,
}

impl Proto {
    /// The protocol numbered `v`, if it is one kbpf's sockets have.
    pub fn from_raw(v: u32) -> Option<Proto> {
        match v {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    /// The socket type it goes with (`SOCK_STREAM` or `SOCK_DGRAM`).
    pub fn sock_type(self) -> u32 {
        match self {
            Proto::Tcp => SOCK_STREAM,
            Proto::Udp => SOCK_DGRAM,
        }
    }

    /// `"tcp"` or `"udp"`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// An IP address: 16 bytes in network order, IPv4 in its v4-mapped form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// `::`, the IPv6 wildcard.
    pub const ANY6: Addr = Addr([0; 16]);
    /// `0.0.0.0`, the IPv4 wildcard (v4-mapped).
    pub const ANY4: Addr = Addr::v4([0; 4]);

    /// The v4-mapped form of an IPv4 address.
    pub const fn v4(a: [u8; 4]) -> Addr {
        Addr([
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
        ])
    }

    /// The address of `ip` (IPv4 mapped).
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::v4(a.octets()),
            IpAddr::V6(a) => Addr(a.octets()),
        }
    }

    /// The IPv4 address, if this is a v4-mapped one.
    pub fn as_v4(&self) -> Option<[u8; 4]> {
        let a = &self.0;
        (a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff).then(|| [a[12], a[13], a[14], a[15]])
    }

    /// The address as `family` writes it: IPv4 for `Inet`, the 16 bytes for `Inet6`.
    pub fn to_ip(&self, family: Family) -> IpAddr {
        match (family, self.as_v4()) {
            (Family::Inet, Some(v4)) => IpAddr::V4(Ipv4Addr::from(v4)),
            (Family::Inet, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (Family::Inet6, _) => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// Whether this is the wildcard of `family` (`0.0.0.0` or `::`).
    pub fn is_any(&self, family: Family) -> bool {
        match family {
            Family::Inet => *self == Addr::ANY4,
            Family::Inet6 => *self == Addr::ANY6,
        }
    }

    /// The four 32-bit words as a program reads them (network byte order in memory).
    pub fn words(&self) -> [u32; 4] {
        let w =
            |i: usize| u32::from_ne_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]]);
        [w(0), w(4), w(8), w(12)]
    }

    /// The IPv4 address as a program reads it (`__be32`), 0 when this is not one.
    pub fn word4(&self) -> u32 {
        self.as_v4().map_or(0, u32::from_ne_bytes)
    }
}

/// An address and a port (host order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address.
    pub addr: Addr,
    /// The port, host order.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint of a socket address.
    pub fn of(sa: &SocketAddr) -> Endpoint {
        Endpoint {
            addr: Addr::from_ip(sa.ip()),
            port: sa.port(),
        }
    }

    /// As a socket address of `family`.
    pub fn to_socket_addr(&self, family: Family) -> SocketAddr {
        SocketAddr::new(self.addr.to_ip(family), self.port)
    }
}

/// How a socket's bound address meets a packet's destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddrMatch {
    /// The socket is bound to the wildcard of its family.
    Wildcard,
    /// The socket is bound to exactly the destination.
    Exact,
}

/// Whether a socket of `family` (with `v6only`) bound to `bound` receives packets of
/// `pkt_family` for `daddr`, and how: an IPv4 packet reaches IPv4 sockets and dual-stack IPv6
/// ones (bound to `::` or to the v4-mapped destination); an IPv6 packet reaches IPv6 sockets
/// only.
pub fn local_match(
    family: Family,
    v6only: bool,
    bound: Addr,
    pkt_family: Family,
    daddr: Addr,
) -> Option<AddrMatch> {
    match (pkt_family, family) {
        (Family::Inet6, Family::Inet) => None,
        (Family::Inet, Family::Inet6) if v6only => None,
        (Family::Inet, Family::Inet6) if bound == Addr::ANY6 => Some(AddrMatch::Wildcard),
        _ if bound.is_any(family) => Some(AddrMatch::Wildcard),
        _ if bound == daddr => Some(AddrMatch::Exact),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn v4_mapped_round_trip() {
        let a = Addr::from_ip("127.0.0.1".parse().unwrap());
        assert_eq!(a.as_v4(), Some([127, 0, 0, 1]));
        assert_eq!(a.to_ip(Family::Inet6).to_string(), "::ffff:127.0.0.1");
        assert_eq!(a.to_ip(Family::Inet).to_string(), "127.0.0.1");
        assert_eq!(a.word4(), u32::from_ne_bytes([127, 0, 0, 1]));
        let b = Addr::from_ip("fd00::1".parse().unwrap());
        assert_eq!(b.as_v4(), None);
        assert_eq!(b.word4(), 0);
        assert!(Addr::ANY4.is_any(Family::Inet) && !Addr::ANY4.is_any(Family::Inet6));
    }

    #[test]
    fn which_sockets_a_destination_reaches() {
        let v4 = Addr::v4([127, 0, 0, 1]);
        let v6 = Addr::from_ip("fd00::1".parse().unwrap());
        use AddrMatch::*;
        use Family::*;
        assert_eq!(local_match(Inet, false, v4, Inet, v4), Some(Exact));
        assert_eq!(
            local_match(Inet, false, Addr::ANY4, Inet, v4),
            Some(Wildcard)
        );
        assert_eq!(
            local_match(Inet6, false, Addr::ANY6, Inet, v4),
            Some(Wildcard)
        );
        assert_eq!(local_match(Inet6, true, Addr::ANY6, Inet, v4), None);
        assert_eq!(local_match(Inet6, false, v4, Inet, v4), Some(Exact));
        assert_eq!(local_match(Inet6, false, v6, Inet, v4), None);
        assert_eq!(local_match(Inet, false, Addr::ANY4, Inet6, v6), None);
        assert_eq!(local_match(Inet6, true, v6, Inet6, v6), Some(Exact));
        assert_eq!(
            local_match(Inet6, false, Addr::ANY6, Inet6, v6),
            Some(Wildcard)
        );
    }
}
