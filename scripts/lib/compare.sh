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

# Interleaved rounds of one SCHED_CLS figure of `kbpf-host-bench isa` against the same field of
# `kbpf bench isa --engine jit`: compare_isa NAME FIELD ROUNDS LABEL. Prints each round and the
# medians; the last line is one JSON object.
compare_isa() {
    local name=$1 field=$2 rounds=$3 label=$4
    compare_setup
    compare_need_host "$name" isa --repeat 10 --trials 1
    compare_machine
    mkdir -p "target/$name"
    local file="target/$name/rounds.txt"
    : >"$file"
    printf '%5s %12s %12s\n' round kernel kbpf
    for r in $(seq 1 "$rounds"); do
        local k b
        k=$("$host" isa --json | json_field "$field")
        b=$(on_cpu0 $kbpf bench isa --engine jit --json | json_field "$field")
        printf '%5s %12s %12s\n' "$r" "$k" "$b"
        echo "$k $b" >>"$file"
    done
    k=$(awk '{print $1}' "$file" | median)
    b=$(awk '{print $2}' "$file" | median)
    echo "median ns per $label: kernel $k kbpf $b"
    awk -v k="$k" -v b="$b" -v m="$machine_json" 'BEGIN {
        printf "{\"kernel\":%s,\"kbpf\":%s,\"ratio\":%.3f,\"machine\":%s}\n", k, b, b / k, m }'
}
