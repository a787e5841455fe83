#!/usr/bin/env bash
# Admin API and web UI latency (issue 18, item 6): DEVICES devices (1,000,000 by default) in the embedded SQLite
# inventory, then sequential requests over one keep-alive connection from random cursors:
#   - GET /api/v1/devices?limit=100&after=<random MAC>            (target: p99 <= 20 ms over 1,000,000 devices)
#   - the same with a model filter and with a search
#   - GET /ui/devices?after=<random MAC>, the device list page     (target: <= 200 ms server time at 100,000)
#   - GET /ui/devices/<random MAC>, a device page
# Times are whole responses as the client sees them on loopback, so they include the server time. Asserts nothing.
#   bash bench/admin.sh                      (DEVICES=1000000 COUNT=2000)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${DEVICES:-1000000}"
COUNT="${COUNT:-2000}"
cargo build --release -q -p provisor
bin="$PWD/target/release/provisor"
dir="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$dir" "$DEVICES" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
models = ["CP-8841-3PCC", "CP-6841-3PCC", "CP-7841-3PCC", "CP-8851-3PCC"]
with open(f"{d}/devices.csv", "w") as f, open(f"{d}/macs", "w") as m:
    f.write("mac,model,description,User_ID_1_,Password_1_,Display_Name_1_\n")
    for i in range(n):
        mac = f"0c{i >> 24:02x}{(i >> 16) & 255:02x}{(i >> 8) & 255:02x}{i & 255:02x}01"
        f.write(f"{mac},{models[i % 4]},desk {i},{100000 + i},pw-{i:07d},Phone {i}\n")
        m.write(mac + "\n")
PY
cat >"$dir/provisor.toml" <<TOML
data_dir = "$dir/data"
[http]
listen = "127.0.0.1:28081"
[https]
listen = ""
[tftp]
listen = ""
[syslog]
listen = ""
[admin]
listen = "127.0.0.1:29180"
[provisioning]
identity = "mac"
TOML
export PROVISOR_CONFIG="$dir/provisor.toml"
/usr/bin/time -f "import of $DEVICES devices: %e s" "$bin" device import "$dir/devices.csv" 2>&1 >/dev/null | tail -n1
token=$("$bin" token create --name bench --role read 2>/dev/null)
echo "a long enough password" | "$bin" user add bench --role read --password-stdin 2>/dev/null
"$bin" serve 2>"$dir/serve.log" &
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:29180/healthz && break; sleep 0.2; done
cookie=$(curl -s -i -H "Origin: http://127.0.0.1:29180" -d "user=bench&password=a+long+enough+password" \
  http://127.0.0.1:29180/ui/login | grep -i '^set-cookie: provisor_session=' | sed 's/^[^:]*: //; s/;.*//')
run() { echo -n "$1: "; python3 bench/admin_latency.py 127.0.0.1:29180 "$dir/macs" "$COUNT" "$2" "$3"; }
run "API page of 100 (of $DEVICES)" "Authorization: Bearer $token" "/api/v1/devices?limit=100&after={after}"
run "API page of 100, one model" "Authorization: Bearer $token" "/api/v1/devices?limit=100&model=CP-6841-3PCC&after={after}"
run "API device" "Authorization: Bearer $token" "/api/v1/devices/{after}"
run "UI device list page (100 rows)" "Cookie: $cookie" "/ui/devices?after={after}"
run "UI device list page, one model" "Cookie: $cookie" "/ui/devices?model=CP-6841-3PCC&after={after}"
run "UI device page" "Cookie: $cookie" "/ui/devices/{after}"
COUNT=$((COUNT / 10))
run "UI search 'desk 12345' (scan)" "Cookie: $cookie" "/ui/devices?q=desk+12345&after={after}"
run "UI dashboard" "Cookie: $cookie" "/ui/?x={after}"
