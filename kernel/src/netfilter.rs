//! Connection tracking and the conntrack kfuncs (Linux `net/netfilter/nf_conntrack_core.c`,
//! `nf_conntrack_bpf.c`, `nf_nat_bpf.c`).
//!
//! - [`tuple`]: tuples (both directions, IPv4/IPv6, TCP/UDP/ICMP) and zones;
//! - [`conn`]: the entry (`struct nf_conn` at Linux's offsets), status bits, timeouts;
//! - [`netns`]: the table's view of network namespaces (the one model's numbers and ids,
//!   [`crate::net::nsid`]) and its per-netns entry counts;
//! - [`table`]: the hash table, lock-free lookup with get-unless-zero, allocation with the
//!   kernel's behaviour when full, insertion that fails on a clash; [`ctl`]: the control path
//!   (add, delete, flush, garbage collection, listing, resizing);
//! - [`kfuncs`]: the kfuncs' run-time side (`bpf_xdp_ct_lookup`, `bpf_ct_insert_entry`, …),
//!   with `struct bpf_ct_opts` checked in the kernel's order ([`opts`]) and NAT set-up
//!   ([`nat`]).
//!
//! There is one table, [`conntrack`], created on first use with the kernel's default sizes;
//! its readers are programs (inside `cpu::rcu()` read-side sections) and its control path is
//! the API here, which the CLI's `kbpf ct` uses.

pub mod conn;
pub mod ctl;
pub mod kfuncs;
pub mod nat;
pub mod netns;
pub mod opts;
pub mod slab;
pub mod table;
pub mod tuple;

#[cfg(all(test, not(loom)))]
mod tests;

pub use conn::{Conn, HZ, jiffies, status};
pub use ctl::{EntryInfo, EntrySpec};
pub use netns::{CURRENT_NETNS, INIT_NET, MAX_NETNS};
pub use table::{Found, Table, TableConfig};
pub use tuple::{Tuple, Zone};

use crate::Result;

/// The default bucket count and entry limit (`nf_conntrack_buckets` and `nf_conntrack_max`
/// on a machine with a gigabyte or more).
pub const DEFAULT_SIZE: u32 = 262_144;

static CONNTRACK: spin::Once<Table<'static>> = spin::Once::new();

/// The conntrack table, created on first use (`ENOMEM` if it cannot be).
#[inline]
pub fn conntrack() -> Result<&'static Table<'static>> {
    if let Some(t) = CONNTRACK.get() {
        return Ok(t);
    }
    CONNTRACK.try_call_once(|| {
        // A fixed seed before a host is registered (no program can run then).
        let seed = crate::host::try_get().map_or(0x6b62_7066_6374, |h| {
            (h.random_u32() as u64) << 32 | h.random_u32() as u64
        });
        // The first reading may set up the host's clock (the shim starts its tick): here, on
        // the control path, rather than in a program's first lookup.
        let _ = jiffies();
        Table::new(
            TableConfig {
                buckets: DEFAULT_SIZE as usize,
                max: DEFAULT_SIZE,
                seed,
                clock: jiffies,
            },
            crate::cpu::rcu(),
        )
    })
}

/// One pass of the garbage collector over the conntrack table, if it has been created
/// (`gc_worker`): what a host runs periodically (the shim, once a second). Returns how many
/// expired entries went. Waits for a grace period: never call it from inside a read-side
/// section (a program).
pub fn gc_pass() -> usize {
    CONNTRACK.get().map_or(0, |t| t.gc(t.now()))
}

/// Netns `net` exited ([`crate::net::Net::exit`]): its entries in the conntrack table go, if
/// the table exists (`nf_conntrack_cleanup_net`). Waits for grace periods.
pub fn netns_exit(net: u32) {
    if let Some(t) = CONNTRACK.get() {
        t.flush_netns(net);
    }
}
