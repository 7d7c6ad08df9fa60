//! `kbpf sock …` arguments: sockets, network namespaces and sk_lookup links, driving
//! `kbpf::net`'s control path. Names are the session's (`kbpf shell` keeps them between
//! lines); the netns `init` always exists.

use clap::{Subcommand, ValueEnum};
use std::net::SocketAddr;

/// A socket's family and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SockKind {
    /// `AF_INET`, `SOCK_STREAM`.
    Tcp4,
    /// `AF_INET6`, `SOCK_STREAM`.
    Tcp6,
    /// `AF_INET`, `SOCK_DGRAM`.
    Udp4,
    /// `AF_INET6`, `SOCK_DGRAM`.
    Udp6,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `sock` verbs. NAME is a socket's name in this session; NETNS a netns's (default `init`);
/// PROG a loaded program's name; ADDR an address and port (`127.0.0.1:80`, `[fd00::1]:80`).
#[derive(Debug, Subcommand)]
pub enum SockCmd {
    /// Create a network namespace (prints its number, which `ct` commands and `prog run
    /// --netns` name it by; `ct netns-add` makes the same kind, named by its number).
    Netns {
        /// Its name.
        name: String,
        /// The id programs name it by in `netns_id` (socket helpers and `bpf_ct_opts`).
        #[arg(long)]
        id: Option<i32>,
    },
    /// Create a socket.
    Create {
        /// Its name.
        name: String,
        /// tcp4, tcp6, udp4 or udp6.
        #[arg(value_enum)]
        kind: SockKind,
        /// The netns it lives in.
        #[arg(long)]
        netns: Option<String>,
        /// Set SO_REUSEPORT.
        #[arg(long)]
        reuseport: bool,
        /// Set IPV6_V6ONLY.
        #[arg(long)]
        v6only: bool,
    },
    /// Bind a socket to an address (port 0: an ephemeral port).
    Bind {
        /// The socket.
        name: String,
        /// The address.
        addr: SocketAddr,
    },
    /// Make a TCP socket listen.
    Listen {
        /// The socket.
        name: String,
        /// The backlog.
        #[arg(long, default_value_t = 128)]
        backlog: u32,
    },
    /// Connect (TCP: through the lookup path; UDP: set the peer).
    Connect {
        /// The socket.
        name: String,
        /// The destination.
        addr: SocketAddr,
    },
    /// Take a connection off a listener, as a new socket.
    Accept {
        /// The listener.
        name: String,
        /// The new socket's name.
        new: String,
    },
    /// Send a UDP datagram (to the peer, or --to), through the lookup path.
    Send {
        /// The socket.
        name: String,
        /// The payload (text).
        data: String,
        /// The destination.
        #[arg(long)]
        to: Option<SocketAddr>,
    },
    /// Receive a queued datagram.
    Recv {
        /// The socket.
        name: String,
    },
    /// Close a socket (it leaves every socket map).
    Close {
        /// The socket.
        name: String,
    },
    /// Link a loaded sk_lookup program to a netns (BPF_LINK_CREATE, BPF_SK_LOOKUP).
    Attach {
        /// The program.
        prog: String,
        /// The netns.
        #[arg(long)]
        netns: Option<String>,
    },
    /// Close a program's sk_lookup link.
    Detach {
        /// The program.
        prog: String,
    },
    /// The sk_lookup programs of a netns, in run order (BPF_PROG_QUERY).
    Query {
        /// The netns.
        #[arg(long)]
        netns: Option<String>,
    },
    /// Which socket a packet goes to: the netns's lookup path, sk_lookup programs included.
    Lookup {
        /// tcp or udp.
        #[arg(value_enum)]
        proto: ProtoArg,
        /// The packet's source.
        from: SocketAddr,
        /// The packet's destination.
        to: SocketAddr,
        /// The netns.
        #[arg(long)]
        netns: Option<String>,
    },
    /// List this session's sockets.
    List,
}
