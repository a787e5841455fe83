#!/usr/bin/env bash
# Boot storm (issue "Phone simulator", item 4), loopback only: PHONES simulated phones (10,000 by default) boot within
# a 60-second window against `provisor serve` and walk the whole flow: TFTP bootstrap, HTTPS with a client
# certificate, then the encrypted profile over plain HTTP (three fetches per phone; the firmware of an Upgrade_Rule
# is not configured here). Prints the load generator's summary and writes the chart; asserts nothing.
#   bash bench/storm.sh            (PHONES=10000 WINDOW=60s by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PHONES="${PHONES:-10000}"
WINDOW="${WINDOW:-60s}"
cargo build --release -q -p provisor
bin="$PWD/target/release/provisor"
dir="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

python3 - "$dir" "$PHONES" <<'EOF'
import sys
d, n = sys.argv[1], int(sys.argv[2])
with open(f"{d}/devices.csv", "w") as f:
    f.write("mac,model,User_ID_1_,Password_1_\n")
    for i in range(n):
        f.write(f"0c:00:00:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x},CP-8841-3PCC,{3000 + i},pw-{i}\n")
EOF
"$bin" device --data-dir "$dir/data" import "$dir/devices.csv" 2>/dev/null
cat >"$dir/provisor.toml" <<EOF
data_dir = "data"
[http]
listen = "127.0.0.1:18180"
[https]
listen = "127.0.0.1:18443"
# The simulated phones' certificates come from the site's generated CA.
test_phone_ca = true
[tftp]
listen = "127.0.0.1:18069"
# Every simulated phone comes from 127.0.0.1: lift the per-address caps meant for one NAT'd site.
max_sessions_per_address = 10000
[syslog]
listen = "127.0.0.1:18514"
[admin]
listen = "127.0.0.1:0"
[limits]
max_connections_per_address = 4096
EOF
"$bin" serve --config "$dir/provisor.toml" 2>"$dir/serve.log" &
serve_pid=$!
sleep 1
tls="$dir/data/tls"
start=$(date +%s.%N)
"$bin" loadtest --dhcp-tftp 127.0.0.1:18069 --phones "$PHONES" --first-mac 0c:00:00:00:00:00 --boot-window "$WINDOW" \
  --ca "$tls/ca.pem" --client-ca-cert "$tls/ca.pem" --client-ca-key "$tls/ca.key" --chart "$dir/storm.svg" \
  --phone-timeout 300s 2>/dev/null | tee "$dir/summary.txt" || true
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$serve_pid/status")
mkdir -p bench/out
cp "$dir/storm.svg" bench/out/storm.svg
echo "server peak RSS: $((rss / 1024)) MB"
echo "loadtest wall time including certificate generation: $(echo "$end - $start" | bc -l | xargs printf '%.1f') s"
echo "chart: bench/out/storm.svg"
