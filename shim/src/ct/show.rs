//! How `kbpf ct list` prints entries: one line each, after conntrack(8)'s
//! `/proc/net/nf_conntrack` format (family, protocol, seconds left, both tuples, status, mark,
//! zone), plus kbpf's namespace and reference count; or JSON.

use kbpf::netfilter::conn::HZ;
use kbpf::netfilter::tuple::{AF_INET6, proto_name};
use kbpf::netfilter::{EntryInfo, status};
use serde_json::json;

/// The status bits by name, `|`-separated (`-` for none).
pub fn status_names(bits: u64) -> String {
    let names: Vec<&str> = (0..16)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| status::NAMES[b])
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join("|")
    }
}

fn family(e: &EntryInfo) -> &'static str {
    if e.orig.src.l3num == AF_INET6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// One entry as a line.
pub fn line(e: &EntryInfo) -> String {
    format!(
        "{} {} {} {} {} [{}] mark={} zone={} netns={} refs={}",
        family(e),
        proto_name(e.orig.dst.protonum),
        e.expires_in / HZ,
        e.orig,
        e.reply,
        status_names(e.status),
        e.mark,
        e.zone.id,
        e.net,
        e.refs
    )
}

/// One entry as a JSON object.
pub fn json(e: &EntryInfo) -> serde_json::Value {
    json!({
        "family": family(e),
        "proto": proto_name(e.orig.dst.protonum),
        "timeout_ms": e.expires_in * 1000 / HZ,
        "orig": e.orig.to_string(),
        "reply": e.reply.to_string(),
        "status": status_names(e.status),
        "mark": e.mark,
        "zone": e.zone.id,
        "zone_dir": e.zone.dir,
        "netns": e.net,
        "refs": e.refs,
    })
}
