#!/usr/bin/env bash
# Side-by-side benchmarks of the profile toolkit (issue "Profile toolkit", item 6). Prints medians and ratios;
# paste the table into BENCHMARKS.md with this command line. Asserts nothing: speed is never a test.
#   bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p provisor -p provisor-bench
out=bench/out; mkdir -p "$out"
python3 bench/make_inputs.py "$out"
bin=target/release/provisor
./target/release/provisor-bench "$out/profile-1000.xml" "$out/profile-50k.xml" "$out/blob-1m.bin" "$out/profile-1000-distinct.xml" | tee "$out/provisor.txt"
python3 bench/compare.py "$out" "$bin"
