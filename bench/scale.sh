#!/usr/bin/env bash
# Scale (issue "Past one machine", item 6), side by side in one run: DEVICES devices (1,000,000 by default) imported
# into the embedded SQLite inventory and into PostgreSQL (time and the importer's peak RSS), then the first fetch of
# random devices' encrypted profiles out of all of them at RATE requests/s for SECONDS (p50/p99 from the scheduled
# time: bench/fetch_rate.py), against one node on each. Secrets are sealed at rest in both. Asserts nothing.
#   bash bench/scale.sh                    (DEVICES=1000000 RATE=1000 DURATION=30)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${DEVICES:-1000000}"
RATE="${RATE:-1000}"
DURATION="${DURATION:-30}"
cargo build --release -q -p provisor
bin="$PWD/target/release/provisor"
dir="$(mktemp -d)"
source bench/pg.sh
trap 'kill $(jobs -p) 2>/dev/null || true; pg_stop; rm -rf "$dir"' EXIT
pg_start "$dir"

python3 - "$dir" "$DEVICES" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
with open(f"{d}/devices.csv", "w") as f:
    f.write("mac,model,group,User_ID_1_,Password_1_,Display_Name_1_\n")
    for i in range(n):
        f.write(f"0c:{i >> 24:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}:01,CP-8841-3PCC,,{100000 + i},pw-{i:07d},Phone {i}\n")
PY
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secrets.key"
chmod 600 "$dir/secrets.key"
for db in sqlite postgres; do
  mkdir -p "$dir/$db"
  url=""; [ "$db" = postgres ] && url="url = \"$PG_URL\""
  cat >"$dir/$db/provisor.toml" <<TOML
data_dir = "data"
[http]
listen = "127.0.0.1:28080"
[https]
listen = ""
[tftp]
listen = ""
[syslog]
listen = ""
[admin]
listen = ""
[limits]
max_connections_per_address = 4096
[provisioning]
identity = "mac"
[inventory]
secrets_key_file = "$dir/secrets.key"
$url
TOML
done
echo "== import $DEVICES devices (one transaction each; secrets sealed)"
for db in sqlite postgres; do
  /usr/bin/time -f "$db import: %e s, importer peak RSS %M KB" \
    "$bin" device --config "$dir/$db/provisor.toml" import "$dir/devices.csv" >/dev/null 2>"$dir/$db/import.log" || true
  tail -n1 "$dir/$db/import.log"
done
du -sh "$dir/sqlite/data/inventory.sqlite" | sed 's/^/sqlite file: /'
"$PG_BIN/psql" -tA -d "$PG_URL" -c "SELECT 'postgres database: ' || pg_size_pretty(pg_database_size('provisor'))"

echo "== first fetch of random devices at $RATE/s for $DURATION s (encrypted profile by its random path)"
python3 -c "
import sqlite3, sys
c = sqlite3.connect('$dir/sqlite/data/inventory.sqlite')
open('$dir/tokens-sqlite', 'w').write('\n'.join(r[0] for r in c.execute('SELECT path_token FROM devices')))
"
"$PG_BIN/psql" -tA -d "$PG_URL" -c "SELECT path_token FROM devices" >"$dir/tokens-postgres"
for db in sqlite postgres; do
  "$bin" serve --config "$dir/$db/provisor.toml" 2>"$dir/$db/serve.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:28080/ && break; sleep 0.2; done
  echo -n "$db: "
  python3 bench/fetch_rate.py 127.0.0.1:28080 "$dir/tokens-$db" "$RATE" "$DURATION" 64 | paste -sd' '
  echo "$db server peak RSS: $(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) / 1024 )) MB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
