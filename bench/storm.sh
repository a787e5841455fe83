#!/usr/bin/env bash
# Boot storm (issue "Phone simulator", item 4; issue "Past one machine", item 6), loopback only: PHONES simulated
# phones (10,000 by default) boot within WINDOW against `provisor serve` and walk the whole flow: TFTP bootstrap, HTTPS
# with a client certificate, then the encrypted profile over plain HTTP (three fetches per phone). Prints the load
# generator's summary, each node's peak RSS, and writes the chart; asserts nothing.
#   bash bench/storm.sh                              (PHONES=10000 WINDOW=60s, one node on SQLite)
#   WINDOW=10s bash bench/storm.sh                   (a power-restore storm: every phone boots within 10 s)
#   MAX_CONNECTIONS=256 bash bench/storm.sh          ([limits] max_connections of each listener)
#   MAX_TLS_HANDSHAKES=16 bash bench/storm.sh        ([limits] max_tls_handshakes)
#   STORMS=3 CHANGE=1 WINDOW=10s bash bench/storm.sh (three storms in a row on one server, the defaults group changed
#                                                     before the second and third: every cache cold; RSS after each)
#   DATABASE=postgres bash bench/storm.sh            (one node on a throwaway PostgreSQL cluster)
#   DATABASE=postgres NODES=2 bash bench/storm.sh    (two nodes on it; the phones spread across both by their DHCP
#                                                     TFTP server, as option 150 lists would)
set -euo pipefail
cd "$(dirname "$0")/.."
PHONES="${PHONES:-10000}"
WINDOW="${WINDOW:-60s}"
DATABASE="${DATABASE:-sqlite}"
NODES="${NODES:-1}"
STORMS="${STORMS:-1}"
CHANGE="${CHANGE:-0}"
[ "$DATABASE" = postgres ] || [ "$NODES" = 1 ] || { echo "NODES>1 needs DATABASE=postgres (one shared inventory)"; exit 1; }
cargo build --release -q -p provisor
# PROVISOR_BIN measures another build (an older commit's, for a before/after) with the same setup.
bin="${PROVISOR_BIN:-$PWD/target/release/provisor}"
dir="$(mktemp -d)"
source bench/pg.sh
trap 'kill $(jobs -p) 2>/dev/null || true; pg_stop; rm -rf "$dir"' EXIT

python3 - "$dir" "$PHONES" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
with open(f"{d}/devices.csv", "w") as f:
    f.write("mac,model,User_ID_1_,Password_1_\n")
    for i in range(n):
        f.write(f"0c:00:00:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x},CP-8841-3PCC,{3000 + i},pw-{i}\n")
PY
inventory=""
if [ "$DATABASE" = postgres ]; then
  pg_start "$dir"
  inventory="[inventory]
url = \"$PG_URL\"
secrets_key_file = \"$dir/secrets.key\""
else
  inventory="[inventory]
secrets_key_file = \"$dir/secrets.key\""
fi
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secrets.key"
chmod 600 "$dir/secrets.key"

node_config() { # node number -> its directory with provisor.toml
  local n="$1" node="$dir/node$1"
  mkdir -p "$node"
  cat >"$node/provisor.toml" <<TOML
data_dir = "data"
[http]
listen = "127.0.0.1:1${n}180"
[https]
listen = "127.0.0.1:1${n}443"
# The simulated phones' certificates come from the site's generated CA.
test_phone_ca = true
[tftp]
listen = "127.0.0.1:1${n}069"
# Every simulated phone comes from 127.0.0.1: lift the per-address caps meant for one NAT'd site.
max_sessions_per_address = 10000
[syslog]
listen = "127.0.0.1:1${n}514"
[admin]
listen = "127.0.0.1:0"
[limits]
max_connections_per_address = 4096
${MAX_CONNECTIONS:+max_connections = $MAX_CONNECTIONS}
${MAX_TLS_HANDSHAKES:+max_tls_handshakes = $MAX_TLS_HANDSHAKES}
$inventory
node = "node$n"
TOML
  echo "$node"
}
first=$(node_config 1)
"$bin" device --config "$first/provisor.toml" import "$dir/devices.csv" 2>/dev/null
pids=()
servers=()
for n in $(seq 1 "$NODES"); do
  node="$dir/node$n"
  [ "$n" = 1 ] || node_config "$n" >/dev/null
  # One site certificate for every node (as a site deploys the same one on each): later nodes reuse node 1's.
  if [ "$n" != 1 ]; then mkdir -p "$node/data" && cp -a "$first/data/tls" "$node/data/"; fi
  "$bin" serve --config "$node/provisor.toml" 2>"$node/serve.log" &
  pids+=($!)
  servers+=("127.0.0.1:1${n}069")
  # Node 1 generates the TLS files the others copy.
  for _ in $(seq 1 50); do [ -s "$first/data/tls/ca.key" ] && break; sleep 0.2; done
done
sleep 1
tls="$first/data/tls"
start=$(date +%s.%N)
for storm in $(seq 1 "$STORMS"); do
  if [ "$storm" -gt 1 ] && [ "$CHANGE" = 1 ]; then
    # A change to the defaults group: every device's profile changes, every cache is cold.
    "$bin" group --config "$first/provisor.toml" put --replace defaults --param "Text_Logo=storm $storm" >/dev/null
    sleep 1
  fi
  [ "$STORMS" = 1 ] || echo "storm $storm of $STORMS"
  "$bin" loadtest --dhcp-tftp "$(IFS=,; echo "${servers[*]}")" --phones "$PHONES" --first-mac 0c:00:00:00:00:00 \
    --boot-window "$WINDOW" --ca "$tls/ca.pem" --client-ca-cert "$tls/ca.pem" --client-ca-key "$tls/ca.key" \
    --chart "$dir/storm.svg" --phone-timeout 300s 2>/dev/null | tee "$dir/summary.txt" || true
  for i in "${!pids[@]}"; do
    echo "node$((i + 1)) RSS now: $(($(awk '/VmRSS/ {print $2}' "/proc/${pids[$i]}/status") / 1024)) MB"
  done
done
end=$(date +%s.%N)
echo "database: $DATABASE, nodes: $NODES"
tick=$(getconf CLK_TCK)
for i in "${!pids[@]}"; do
  rss=$(awk '/VmHWM/ {print $2}' "/proc/${pids[$i]}/status")
  echo "node$((i + 1)) peak RSS: $((rss / 1024)) MB"
  # utime + stime of the server (fields 14 and 15 of /proc/PID/stat; the name in field 2 has no spaces here).
  cpu=$(awk -v t="$tick" '{printf "%.1f", ($14 + $15) / t}' "/proc/${pids[$i]}/stat")
  echo "node$((i + 1)) CPU time: $cpu s"
done
if [ "$DATABASE" = postgres ]; then
  sleep 2 # the journals' last batches
  "$PG_BIN/psql" -tA -d "$PG_URL" -c "SELECT 'requests recorded by ' || node || ': ' || count(*) FROM audit GROUP BY node ORDER BY node"
fi
mkdir -p bench/out
cp "$dir/storm.svg" "bench/out/storm-$DATABASE-$NODES.svg"
echo "loadtest wall time including certificate generation: $(echo "$end - $start" | bc -l | xargs printf '%.1f') s"
echo "chart: bench/out/storm-$DATABASE-$NODES.svg"
