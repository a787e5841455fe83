#!/usr/bin/env bash
# TFTP benchmarks (issue "TFTP server and client", item 7), loopback only, Provisor and tftpd-hpa side by side in
# one run. Prints medians and ratios for BENCHMARKS.md. Asserts nothing.
#   ROUNDS=7 bash bench/tftp.sh   (ROUNDS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
cargo build --release -q -p provisor -p provisor-bench
bin="$PWD/target/release/provisor"
load="$PWD/target/release/provisor-bench"
dir="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c $((64 * 1024 * 1024)) /dev/urandom >"$dir/big.bin"
head -c $((100 * 1024)) /dev/urandom >"$dir/small.bin"

/usr/sbin/in.tftpd -L -a 127.0.0.1:16901 -s "$dir" -u root &
# Every client is on 127.0.0.1: the per-address cap (500 by default, against one host hogging the table) is lifted.
"$bin" tftp serve --root "$dir" --listen 127.0.0.1:16902 --blksize-max 65464 --max-sessions 5000 \
  --max-sessions-per-address 5000 2>/dev/null &
prov_pid=$!
sleep 1

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
time_it() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "failed (corrupt or incomplete download): $*" >&2; exit 1; }
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

# Rounds alternate between the two servers, so a slow spell of the shared host hits both alike. Each round's
# ratio is kept too: a target must hold round by round ("5 of 7"), not only in the median.
pair() { # $1: a download command writing $dir/out.bin, with PORT for the server's port
  # prints: tftpd-hpa median, Provisor median, then each round's ratio (tftpd-hpa time / Provisor time)
  local h=() p=() r=()
  for _ in $(seq "$ROUNDS"); do
    rm -f "$dir/out.bin"; h+=("$(time_it bash -c "${1//PORT/16901}")")
    cmp -s "$dir/out.bin" "$dir/big.bin" || { echo "corrupt download from tftpd-hpa" >&2; exit 1; }
    rm -f "$dir/out.bin"; p+=("$(time_it bash -c "${1//PORT/16902}")")
    cmp -s "$dir/out.bin" "$dir/big.bin" || { echo "corrupt download from Provisor" >&2; exit 1; }
    r+=("$(echo "${h[-1]} / ${p[-1]}" | bc -l)")
  done
  echo "$(printf '%s\n' "${h[@]}" | median) $(printf '%s\n' "${p[@]}" | median) ${r[*]}"
}
row() { # label, target ratio, "h p r1 r2 ..."
  local fields=($3) held=0 rounds=""
  local h=${fields[0]} p=${fields[1]}
  for r in "${fields[@]:2}"; do
    rounds+="$(printf '%.2f ' "$r")"
    if [ "$(echo "$r >= $2" | bc -l)" = 1 ]; then held=$((held + 1)); fi
  done
  printf '| %s | %.2f s | %.2f s | %.2f× | ≥ %s× in %d of %d rounds (%s) |\n' "$1" "$h" "$p" "$(echo "$h / $p" | bc -l)" \
    "$2" "$held" "$((${#fields[@]} - 2))" "${rounds% }"
}

echo "| measurement | tftpd-hpa | Provisor | ratio of medians (tftpd-hpa time / Provisor time) | rounds holding the target |"
echo "|---|---|---|---|---|"
get="atftp --option 'blksize 1468' -g -r big.bin -l $dir/out.bin 127.0.0.1 PORT"
row "64 MiB, atftp, blksize 1468 (lock-step)" 1.1 "$(pair "$get")"
get="atftp --option 'blksize 1468' --option 'windowsize 16' -g -r big.bin -l $dir/out.bin 127.0.0.1 PORT"
row "64 MiB, atftp, blksize 1468 + windowsize 16 (tftpd-hpa ignores it)" 4 "$(pair "$get")"
get="$bin tftp get 127.0.0.1:PORT big.bin -o $dir/out.bin --blksize 1468 --windowsize 16"
row "64 MiB, Provisor client, blksize 1468 + windowsize 16" 4 "$(pair "$get")"

storm() { # $1 port
  "$load" tftp-load "127.0.0.1:$1" small.bin 2000 1468
}
hs=$(storm 16901); ps=$(storm 16902)
hw=$(echo "$hs" | awk '/wall_s/ {print $2}'); pw=$(echo "$ps" | awk '/wall_s/ {print $2}')
hf=$(echo "$hs" | awk '/failures/ {print $2}'); pf=$(echo "$ps" | awk '/failures/ {print $2}')
rss=$(awk '/VmHWM/ {print $2}' "/proc/$prov_pid/status")
printf '| 2,000 concurrent 100 KiB transfers (Provisor client, blksize 1468): wall time | %.2f s (%s failed) | %.2f s (%s failed) | %.2f× | — |\n' "$hw" "$hf" "$pw" "$pf" "$(echo "$hw / $pw" | bc -l)"
printf '| Provisor server peak RSS over the whole run | — | %d MB | — | target < 200 MB |\n' "$((rss / 1024))"
echo
echo "tftpd-hpa storm: $(echo "$hs" | tr '\n' ' ')"
echo "Provisor storm:  $(echo "$ps" | tr '\n' ' ')"
