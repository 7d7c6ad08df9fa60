#!/usr/bin/env bash
# Builds the BPF C examples and the ELF loader's test objects with clang-19 against libbpf's
# public headers, reproducibly (paths relative to the repository, no compiler ident):
# `examples/bpf/build.sh [OUTDIR]` writes each `X.o` beside its `X.c`, or under OUTDIR at the
# same relative path (the tests rebuild into a scratch directory and compare the bytes).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-}"
clang="${CLANG:-clang-19}"
for src in examples/bpf/*.c shim/tests/elf/*.c; do
    [ -e "$src" ] || continue
    obj="${src%.c}.o"
    if [ -n "$out" ]; then
        obj="$out/$obj"
        mkdir -p "$(dirname "$obj")"
    fi
    "$clang" -O2 -g -target bpf -fdebug-compilation-dir=. -fno-ident \
        -I examples/bpf/include -I /usr/include/x86_64-linux-gnu -c "$src" -o "$obj"
done
