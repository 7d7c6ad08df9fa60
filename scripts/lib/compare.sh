# Shared by scripts/compare-*: build, check that the host kernel can run BPF, medians, and the
# machine the figures belong to. Sourced from the repository root.

# Runs "$@" on CPU 0, where the host-side tools pin themselves, so both sides share one CPU.
on_cpu0() {
    if command -v taskset >/dev/null; then
        taskset -c 0 "$@"
    else
        "$@"
    fi
}

# Builds the CLI and the host-side tool; sets $kbpf and $host.
compare_setup() {
    cargo build --release -q -p kbpf-shim
    kbpf=target/release/kbpf
    host=target/release/kbpf-host-bench
}

# Exits 2 with the reason when `$host "$@"` fails (no root, no bpf(2), no JIT).
compare_need_host() {
    local name=$1
    shift
    local why
    if ! why=$("$host" "$@" 2>&1 >/dev/null); then
        echo "$name: the host kernel cannot run BPF here (root and the BPF JIT are needed): $why" >&2
        exit 2
    fi
}

# The median of the numbers on stdin, one per line.
median() {
    sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

# The number of JSON field $1 in the last line of stdin (a flat "key":number pair).
json_field() {
    tail -n 1 | sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9.]*\\).*/\\1/p"
}

# Prints the machine line and sets $machine_json (the host's settings as a JSON object).
compare_machine() {
    local m
    m=$("$host" machine --json)
    echo "$m" | head -n 1
    machine_json=$(echo "$m" | tail -n 1)
}
