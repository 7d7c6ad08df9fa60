//! The `kbpf` command line, declared with clap's derive API (so `--help` is generated from
//! these declarations and cannot drift from them). Shaped after bpftool: `prog`, `map`, `tcx`
//! objects with verbs, plus kbpf's `verify`, `conformance`, `bench`, `demo` and `shell`.

use crate::conformance::Engine;
use crate::progs::ChainKey;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// kbpf: a Rust eBPF core in user mode, driven like bpftool.
#[derive(Debug, Parser)]
#[command(
    name = "kbpf",
    version,
    about = "kbpf: a Rust eBPF core (verifier, interpreter, x86-64 JIT, maps, tail calls, tcx) in user mode, driven like bpftool"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Which engine runs programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The interpreter.
    Interp,
    /// The x86-64 JIT.
    Jit,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Interp => Engine::Interp,
            EngineArg::Jit => Engine::Jit,
        }
    }
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the C examples and run every landed seed feature on sample traffic.
    Demo {
        /// Engine (the JIT unless asked otherwise).
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineArg,
    },
    /// Programs: load, run, show, dump.
    #[command(subcommand)]
    Prog(ProgCmd),
    /// Maps: create, update, lookup, delete, dump.
    ///
    /// MAP is a map's name: one made with `map create`, or one of a loaded object (`jmp_table`,
    /// `.bss`). KEY and VALUE are hex bytes (`06000000`, `"06 00 00 00"`) or typed numbers
    /// (`u32:6`, `u64:1`); a prog_array VALUE may be `prog:NAME`, a loaded program.
    #[command(subcommand)]
    Map(MapCmd),
    /// tcx: attach, detach, query, and mprog-oracle scripts.
    ///
    /// DEV is an ifindex (a device is created on first use); PROG a loaded program's name.
    #[command(subcommand)]
    Tcx(TcxCmd),
    /// Sockets, network namespaces and sk_lookup links (for `kbpf shell` sessions).
    ///
    /// NAME is a socket's name; NETNS a netns's (default `init`); PROG a loaded program's; ADDR
    /// an address and port. A socket map VALUE may be `sock:NAME` (`map update`).
    #[command(subcommand)]
    Sock(super::sock_args::SockCmd),
    /// Conntrack: list, add, delete and flush entries, namespaces, statistics.
    ///
    /// The table is the process's: in `kbpf shell`, entries added here are what later
    /// `prog run` lines' conntrack kfuncs find (and what they insert is listed here).
    #[command(subcommand)]
    Ct(CtCmd),
    /// Verify a program (.o or .data): exit 0 accepted, 1 refused, 2 bad input.
    Verify(VerifyArgs),
    /// Run bpf_conformance .data files or directories; ends "N passed, M failed".
    Conformance {
        /// Engine.
        #[arg(long, value_enum, default_value = "interp")]
        engine: EngineArg,
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Plugin for the upstream bpf_conformance runner: program as hex on stdin, prints r0.
    ConformancePlugin {
        /// An optional memory hex string, then the runner's options (`--jit`, `--xdp`, `--elf`).
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Quick benchmarks; with --json the last line is one JSON object.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Read commands, one per line, from stdin, against one state.
    ///
    /// An object loaded with `prog load` stays loaded: later `prog run FILE.o` lines run its
    /// programs with the maps and global data earlier runs left. `#` starts a comment line.
    Shell,
}

/// How to pick a program in an object.
#[derive(Clone, Debug, Default, Args)]
pub struct Pick {
    /// The program's function name.
    #[arg(long)]
    pub prog: Option<String>,
    /// The program's section.
    #[arg(long)]
    pub section: Option<String>,
}

/// `prog` verbs.
#[derive(Debug, Subcommand)]
pub enum ProgCmd {
    /// Load an object's programs (and maps, global data), or a .data file's program.
    Load {
        /// FILE.o or FILE.data.
        file: PathBuf,
        /// Only programs of this section.
        #[arg(long)]
        section: Option<String>,
        /// Load as this program type instead of the section's.
        #[arg(long = "type")]
        prog_type: Option<String>,
        /// Engine.
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Root's rules (CAP_PERFMON: programs that read kernel objects such as nf_conn)
        /// instead of CAP_BPF + CAP_NET_ADMIN.
        #[arg(long)]
        privileged: bool,
    },
    /// Run a program once or more (BPF_PROG_TEST_RUN); last line `retval=R duration_ns=D`.
    Run {
        /// FILE.o or FILE.data (an object already loaded keeps its maps and data).
        file: PathBuf,
        /// Which program.
        #[command(flatten)]
        pick: Pick,
        /// Engine.
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Packet (or raw buffer) to run on.
        #[arg(long)]
        data_in: Option<PathBuf>,
        /// Where to write the packet as the program left it.
        #[arg(long)]
        data_out: Option<PathBuf>,
        /// Context to run with.
        #[arg(long)]
        ctx_in: Option<PathBuf>,
        /// Where to write the context as the program left it.
        #[arg(long)]
        ctx_out: Option<PathBuf>,
        /// Runs.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Load with root's rules (see `prog load --privileged`), if not loaded yet.
        #[arg(long)]
        privileged: bool,
        /// The network namespace the run happens in, by number (`ct netns-add`, `sock netns`;
        /// 0 the initial): its sockets and conntrack entries are the program's own.
        #[arg(long, default_value_t = 0)]
        netns: u32,
    },
    /// List the loaded programs.
    Show {
        /// One JSON object per program.
        #[arg(long)]
        json: bool,
    },
    /// Print a program as loaded: rewritten instructions (with source lines) or x86-64.
    Dump {
        /// xlated or jited.
        #[arg(value_enum)]
        kind: DumpArg,
        /// FILE.o or FILE.data.
        file: PathBuf,
        /// Which program (default: every program of the object).
        #[command(flatten)]
        pick: Pick,
    },
}

/// What `prog dump` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DumpArg {
    /// The instructions after the load-time rewrites.
    Xlated,
    /// The JIT image.
    Jited,
}

/// `map` verbs. MAP is a map's name: one made with `map create`, or one of a loaded object
/// (`jmp_table`, `.bss`). KEY and VALUE are hex bytes (`06000000`, `"06 00 00 00"`) or typed
/// numbers (`u32:6`, `u64:1`); a prog_array VALUE may be `prog:NAME`.
#[derive(Debug, Subcommand)]
pub enum MapCmd {
    /// Create a map.
    Create {
        /// Its name.
        name: String,
        /// Type (array, hash, prog_array, percpu_array, percpu_hash, ...).
        #[arg(long = "type")]
        map_type: String,
        /// Key size in bytes.
        #[arg(long)]
        key: u32,
        /// Value size in bytes.
        #[arg(long)]
        value: u32,
        /// Number of entries.
        #[arg(long)]
        entries: u32,
    },
    /// Write one element.
    Update {
        /// The map.
        map: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read one element.
    Lookup {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// Delete one element.
    Delete {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// Print every element.
    Dump {
        /// The map.
        map: String,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// A tcx hook direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirArg {
    /// `BPF_TCX_INGRESS`.
    Ingress,
    /// `BPF_TCX_EGRESS`.
    Egress,
}

/// `tcx` verbs. DEV is an ifindex (created on first use); PROG a loaded program's name.
#[derive(Debug, Subcommand)]
pub enum TcxCmd {
    /// Attach a program (BPF_PROG_ATTACH, or BPF_LINK_CREATE with --link).
    Attach {
        /// Device ifindex.
        dev: u32,
        /// Direction.
        #[arg(value_enum)]
        dir: DirArg,
        /// The program.
        prog: String,
        /// Right before this program (or first when given `-`).
        #[arg(long, conflicts_with = "after")]
        before: Option<String>,
        /// Right after this program (or last when given `-`).
        #[arg(long)]
        after: Option<String>,
        /// Replace this program in place.
        #[arg(long, conflicts_with_all = ["before", "after", "link"])]
        replace: Option<String>,
        /// Attach through a link.
        #[arg(long)]
        link: bool,
    },
    /// Detach a program.
    Detach {
        /// Device ifindex.
        dev: u32,
        /// Direction.
        #[arg(value_enum)]
        dir: DirArg,
        /// The program.
        prog: String,
    },
    /// Print the attached programs in run order.
    Query {
        /// Device ifindex.
        dev: u32,
        /// Direction.
        #[arg(value_enum)]
        dir: DirArg,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run an mprog-oracle script (stdin) against tcx.
    Script {
        /// Echo each operation.
        #[arg(short = 'e')]
        echo: bool,
        /// Use the egress hook.
        #[arg(long, short = 'E')]
        egress: bool,
        /// kbpf's FIRST/LAST extension.
        #[arg(long, conflicts_with = "host")]
        first_last: bool,
        /// Run on the host kernel's tcx (lo of a private network namespace) instead.
        #[arg(long)]
        host: bool,
    },
}

/// A connection's tuple (the original direction) and where it lives.
#[derive(Clone, Debug, Args)]
pub struct CtTuple {
    /// Protocol: tcp, udp or icmp.
    #[arg(long, default_value = "tcp")]
    pub proto: String,
    /// Source address (IPv4 or IPv6).
    #[arg(long)]
    pub src: String,
    /// Destination address (the same family).
    #[arg(long)]
    pub dst: String,
    /// Source port (TCP/UDP), or the ICMP id.
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    /// Destination port (TCP/UDP).
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// ICMP type (8: echo request).
    #[arg(long, default_value_t = 8)]
    pub icmp_type: u8,
    /// ICMP code.
    #[arg(long, default_value_t = 0)]
    pub icmp_code: u8,
    /// Zone id.
    #[arg(long, default_value_t = 0)]
    pub zone: u16,
    /// Zone directions: 1 original, 2 reply, 3 both.
    #[arg(long, default_value_t = 3)]
    pub zone_dir: u8,
    /// Namespace, by number (0: the initial one).
    #[arg(long, default_value_t = 0)]
    pub netns: u32,
}

/// `ct` verbs.
#[derive(Debug, Subcommand)]
pub enum CtCmd {
    /// Print the entries (conntrack -L style), or one JSON array.
    List {
        /// Only this namespace.
        #[arg(long)]
        netns: Option<u32>,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add an entry (the reply tuple is the original's inverse).
    Add {
        /// The tuple.
        #[command(flatten)]
        tuple: CtTuple,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 120)]
        timeout: u32,
        /// Status bits to set (SEEN_REPLY = 2, ASSURED = 4, ...).
        #[arg(long, default_value_t = 0)]
        status: u32,
        /// Mark.
        #[arg(long, default_value_t = 0)]
        mark: u32,
    },
    /// Delete the entry with this tuple (either direction).
    Del {
        /// The tuple.
        #[command(flatten)]
        tuple: CtTuple,
    },
    /// Delete every entry (of one namespace).
    Flush {
        /// Only this namespace.
        #[arg(long)]
        netns: Option<u32>,
    },
    /// Remove the expired entries now (the garbage collector's pass).
    Gc,
    /// Create a network namespace, optionally with the id programs name it by: `sock netns`
    /// named by its number, which it prints.
    NetnsAdd {
        /// The `netns_id` that names it (`bpf_ct_opts` and the socket helpers).
        #[arg(long)]
        id: Option<i32>,
    },
    /// Close the session's handle to a network namespace (made by `ct netns-add` or `sock
    /// netns`): it exits, and its entries go, once its sockets are gone too.
    NetnsDel {
        /// The namespace's number.
        netns: u32,
    },
    /// Counts per namespace, the limit, the buckets.
    Stats {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// FILE.o or FILE.data.
    pub file: PathBuf,
    /// Which programs of an object.
    #[command(flatten)]
    pub pick: Pick,
    /// Program type (overrides the file's).
    #[arg(long = "type")]
    pub prog_type: Option<String>,
    /// Expected attach type (overrides the file's).
    #[arg(long)]
    pub attach: Option<String>,
    /// Root's rules instead of CAP_BPF without CAP_PERFMON.
    #[arg(long)]
    pub privileged: bool,
    /// Also ask the host kernel's verifier (.data files).
    #[arg(long)]
    pub host: bool,
}

/// Options every benchmark takes.
#[derive(Clone, Copy, Debug, Args)]
pub struct BenchOpts {
    /// Engine.
    #[arg(long, value_enum, default_value = "interp")]
    pub engine: EngineArg,
    /// Last line one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A tail-call chain's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyArg {
    /// A constant key (direct jumps in the JIT).
    Const,
    /// A key from memory.
    Reg,
}

impl From<KeyArg> for ChainKey {
    fn from(k: KeyArg) -> ChainKey {
        match k {
            KeyArg::Const => ChainKey::Const,
            KeyArg::Reg => ChainKey::Reg,
        }
    }
}

/// `bench` benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Tail-call chains.
    Tailcall {
        /// Engine and output.
        #[command(flatten)]
        opts: BenchOpts,
        /// How each program picks the next slot.
        #[arg(long, value_enum, default_value = "const")]
        key: KeyArg,
    },
    /// The ISA loop, invocation and helper call.
    Isa {
        /// Engine and output.
        #[command(flatten)]
        opts: BenchOpts,
        /// Blind constants.
        #[arg(long)]
        blind: bool,
    },
    /// The JIT'd helper call across image and stack placements (a layout sweep).
    HelperLayouts {
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Array and hash map lookups.
    MapLookup {
        /// Engine and output.
        #[command(flatten)]
        opts: BenchOpts,
    },
    /// The list patcher against the kernel-style baseline.
    Patch {
        /// Time the baseline up to 64K patches too (tens of seconds).
        #[arg(long)]
        full: bool,
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// tcx walks, attach and detach.
    Tcx {
        /// Engine and output.
        #[command(flatten)]
        opts: BenchOpts,
    },
    /// sk_lookup test runs (the host oracle's programs) and lookups with 0, 1, 4 programs.
    Sklookup {
        /// Engine and output.
        #[command(flatten)]
        opts: BenchOpts,
    },
    /// Verification time against program size.
    Verify {
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Conntrack lookup + release from XDP: cached hit, miss, cold hit; tables of several
    /// sizes; two threads.
    Ct {
        /// Engine and output (JSON keys lookup_ns, miss_ns, cold_ns, at 100K entries).
        #[command(flatten)]
        opts: BenchOpts,
        /// Table sizes, ascending.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000u32, 100_000, 1_000_000])]
        sizes: Vec<u32>,
        /// Runs per timed test run.
        #[arg(long, default_value_t = 200_000)]
        repeat: u32,
        /// Interleaved trials (medians are reported).
        #[arg(long, default_value_t = 5)]
        trials: usize,
    },
}
