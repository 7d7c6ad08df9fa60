//! `kbpf ct list|add|del|flush|gc|netns-add|netns-del|stats`: the conntrack table's control
//! path (conntrack(8)'s `-L`/`-I`/`-D`/`-F`, `ip netns` + `ip netns set NAME ID`), on the
//! process's one table ([`kbpf::netfilter::conntrack`]), which the conntrack kfuncs of
//! programs run in the same process (or `kbpf shell` session) use.
//!
//! Namespaces are the session's (`kbpf sock netns` makes the same kind): `ct netns-add` is
//! `sock netns` with the netns's number as its name, and conntrack commands name a netns by
//! its number ([`kbpf::net::Net::num`]; 0 the initial one).

use super::args::{CtCmd, CtTuple};
use super::{CmdError, State};
use crate::ct::show;
use kbpf::netfilter::tuple::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Tuple, Zone};
use kbpf::netfilter::{self, EntrySpec, HZ, conntrack};
use std::io::Write;
use std::net::IpAddr;

fn addr(s: &str) -> Result<Vec<u8>, CmdError> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a.octets().to_vec()),
        Ok(IpAddr::V6(a)) => Ok(a.octets().to_vec()),
        Err(_) => Err(CmdError::usage(format!("{s}: not an IPv4 or IPv6 address"))),
    }
}

/// The tuple and zone the arguments name.
fn tuple(t: &CtTuple) -> Result<(Tuple, Zone), CmdError> {
    let proto = match t.proto.as_str() {
        "tcp" => IPPROTO_TCP,
        "udp" => IPPROTO_UDP,
        "icmp" => IPPROTO_ICMP,
        p => return Err(CmdError::usage(format!("--proto {p}: tcp, udp or icmp"))),
    };
    let (sport, dport) = if proto == IPPROTO_ICMP {
        (t.sport, (t.icmp_type as u16) << 8 | t.icmp_code as u16)
    } else {
        (t.sport, t.dport)
    };
    if !(1..=3).contains(&t.zone_dir) {
        return Err(CmdError::usage("--zone-dir: 1, 2 or 3"));
    }
    let tup = Tuple::new(&addr(&t.src)?, &addr(&t.dst)?, sport, dport, proto)
        .map_err(|_| CmdError::usage("--src and --dst: the same address family"))?;
    Ok((tup, Zone::new(t.zone, t.zone_dir)))
}

fn table() -> Result<&'static netfilter::Table<'static>, CmdError> {
    conntrack().map_err(|e| CmdError::errno("conntrack", e))
}

/// Runs one `kbpf ct` command.
pub fn run(cmd: CtCmd, state: &mut State, out: &mut dyn Write) -> Result<(), CmdError> {
    let ct = table()?;
    match cmd {
        CtCmd::List { netns, json } => {
            let entries = ct.list(netns);
            if json {
                let v: Vec<_> = entries.iter().map(show::json).collect();
                writeln!(out, "{}", serde_json::Value::Array(v))?;
            } else {
                for e in &entries {
                    writeln!(out, "{}", show::line(e))?;
                }
                writeln!(out, "{} entries", entries.len())?;
            }
        }
        CtCmd::Add {
            tuple: t,
            timeout,
            status,
            mark,
        } => {
            let (orig, zone) = tuple(&t)?;
            let spec = EntrySpec {
                net: t.netns,
                zone,
                orig,
                timeout: timeout as u64 * HZ,
                status,
                mark,
            };
            ct.add(&spec).map_err(|e| CmdError::errno("ct add", e))?;
            writeln!(out, "added {orig}")?;
        }
        CtCmd::Del { tuple: t } => {
            let (orig, zone) = tuple(&t)?;
            ct.delete(t.netns, &zone, &orig)
                .map_err(|e| CmdError::errno("ct del", e))?;
            writeln!(out, "deleted {orig}")?;
        }
        CtCmd::Flush { netns } => {
            let n = ct.flush(netns);
            writeln!(out, "flushed {n} entries")?;
        }
        CtCmd::Gc => {
            let n = ct.gc(ct.now());
            writeln!(out, "collected {n} expired entries")?;
        }
        CtCmd::NetnsAdd { id } => {
            let (num, _) = state.netns_add(None, id)?;
            writeln!(
                out,
                "netns {num}{}",
                id.map_or(String::new(), |i| format!(" id {i}"))
            )?;
        }
        CtCmd::NetnsDel { netns } => {
            if state.netns_del(netns)? {
                writeln!(out, "netns {netns} destroyed")?;
            } else {
                writeln!(out, "netns {netns} released (its sockets still use it)")?;
            }
        }
        CtCmd::Stats { json } => {
            let nets = ct.nets.list();
            if json {
                let per: serde_json::Map<String, serde_json::Value> = nets
                    .iter()
                    .map(|&n| (n.to_string(), ct.nets.count(n).into()))
                    .collect();
                let j = serde_json::json!({
                    "max": ct.max(),
                    "buckets": ct.buckets(),
                    "count": per,
                    "objects": ct.live_objects(),
                });
                writeln!(out, "{j}")?;
            } else {
                writeln!(out, "max {} buckets {}", ct.max(), ct.buckets())?;
                for n in nets {
                    let id = ct
                        .nets
                        .id_of(n)
                        .map_or(String::new(), |i| format!(" (id {i})"));
                    writeln!(out, "netns {n}{id}: {} entries", ct.nets.count(n))?;
                }
            }
        }
    }
    Ok(())
}
