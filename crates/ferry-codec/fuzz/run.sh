#!/usr/bin/env bash
# Runs one fuzz target on the stable toolchain:
#   crates/ferry-codec/fuzz/run.sh decode_file|decode_dump [SECONDS] [libFuzzer options...]
# See README.md next to this script.
set -euo pipefail
target=${1:?usage: run.sh decode_file|decode_dump [SECONDS] [libFuzzer options...]}
seconds=${2:-600}
shift $(($# < 2 ? $# : 2))

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$root/build/fuzz
export PATH=$root/build/tools/bin:$PATH
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --root "$root/build/tools"

# New inputs go to the first corpus folder; the committed seeds, and those written by the
# `write_fuzz_seeds` test if present, are only read.
corpora=("$out/corpus/$target" "$here/seeds/$target")
[[ -d $out/seeds/$target ]] && corpora+=("$out/seeds/$target")
mkdir -p "$out/corpus/$target" "$out/artifacts/$target"

# The whole-dataset seeds are ~200 KB; mutating those is slow, and their first 64 KiB hold
# every kind of record anyway.
limits=()
[[ $target == decode_file ]] && limits+=(-max_len=65536)

cd "$here/.."
# cargo-fuzz passes -Z flags (sanitizer, coverage) to rustc: RUSTC_BOOTSTRAP lets the stable
# compiler take them.
RUSTC_BOOTSTRAP=1 exec cargo fuzz run --debug-assertions --target-dir "$out/target" \
    "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" \
    -malloc_limit_mb=256 \
    -timeout=2 \
    -artifact_prefix="$out/artifacts/$target/" \
    -print_final_stats=1 \
    "${limits[@]}" \
    "$@"
