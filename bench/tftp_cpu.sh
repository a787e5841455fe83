#!/usr/bin/env bash
# Server CPU time and wall time of one lock-step 64 MiB download (atftp, blksize 1468), for each Provisor build
# given, one after the other. Reads the server's utime + stime from /proc before and after. Asserts nothing.
#   bash bench/tftp_cpu.sh [PROVISOR_BINARY ...]   (default: target/release/provisor)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { cargo build --release -q -p provisor; set -- "$PWD/target/release/provisor"; }
dir="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c $((64 * 1024 * 1024)) /dev/urandom >"$dir/big.bin"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for bin in "$@"; do
  "$bin" tftp serve --root "$dir" --listen 127.0.0.1:16914 2>/dev/null &
  pid=$!
  sleep 0.5
  c0=$(cpu $pid); s=$(date +%s.%N)
  atftp --option 'blksize 1468' -g -r big.bin -l "$dir/out.bin" 127.0.0.1 16914 >/dev/null 2>&1
  e=$(date +%s.%N); c1=$(cpu $pid)
  kill $pid; wait $pid 2>/dev/null || true
  cmp -s "$dir/out.bin" "$dir/big.bin" || { echo "corrupt download from $bin" >&2; exit 1; }
  printf '%s: wall %.2f s, server CPU %.2f s\n' "$bin" "$(echo "$e - $s" | bc -l)" "$(echo "($c1 - $c0) / $ticks" | bc -l)"
done
