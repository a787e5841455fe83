#!/usr/bin/env bash
# Provisioning-server benchmark (issue "Provisioning server", item 12), loopback only, Provisor and nginx side by side
# in one run. 1,000 devices, each with an encrypted profile URL (/profile/<random>/profile.cfg, about 50 KB before
# gzip); nginx serves the very same bytes as static files. Prints medians and ratios for BENCHMARKS.md, among them each
# server's CPU time per request (steadier than requests/s on a noisy machine); asserts nothing.
#   bash bench/server.sh            (ROUNDS=3, DURATION=10 seconds per wrk run by default; DEVICES=1000)
#   FLOOR=1 bash bench/server.sh    (also bare hyper serving the same bytes from memory: the floor of the HTTP stack)
#   HTTP1_FLOOR=1 bash bench/server.sh (also a bare HTTP/1.1 loop of its own, no hyper, sending the same bytes with
#                                       `sendfile` from the page cache and, separately, with `writev` from memory)
#   PROVISOR_BIN=/path/to/old/provisor bash bench/server.sh     (the same run for another build)
#   BEFORE_BIN=/path/to/old/provisor bash bench/server.sh       (also that build, on a copy of the same site, in the same
#                                                                alternating rounds: a before/after that the machine's
#                                                                drift between two runs cannot blur)
#   GZIP_LEVEL=6 bash bench/server.sh                            ([provisioning] gzip_level; the built-in default: 3)
#   NGINX_LOG=1 bash bench/server.sh   (also a second nginx writing a buffered access log, as Provisor writes its access
#                                       and audit lines: a row for comparison; the target is against the first nginx)
# Needs wrk and nginx (apt-get install wrk nginx-light).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
DEVICES="${DEVICES:-1000}"
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (apt-get install wrk nginx-light)" >&2; exit 1; }
cargo build --release -q -p provisor -p provisor-bench
# PROVISOR_BIN measures another build (an older commit's, for a before/after) with the same setup and nginx run.
bin="${PROVISOR_BIN:-$PWD/target/release/provisor}"
load="$PWD/target/release/provisor-bench"
dir="$(mktemp -d)"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for pid in "$dir/nginx.pid" "$dir/nginx-log.pid"; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
PORT_P=18080 PORT_N=18081

# The inventory: a `defaults` group carrying ~50 KB of parameters (text that compresses like real profiles do,
# about 4:1), and DEVICES devices with their own lines.
python3 - "$dir" "$DEVICES" <<'EOF'
import random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ("sip proxy line call park pickup dial plan ring tone voicemail xfer hold conf bridge user display "
         "office floor building east west north south blf speed key label server backup").split()
with open(f"{d}/group-params.txt", "w") as f:
    for i in range(560):
        value = " ".join(rnd.choice(words) + str(rnd.randrange(100)) for _ in range(9))
        f.write(f"--param\nBench_Param_{i:04d}={value}\n")
with open(f"{d}/devices.csv", "w") as f:
    f.write("mac,model,User_ID_1_,Password_1_,Display_Name_1_\n")
    for i in range(n):
        f.write(f"0c:11:22:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x},CP-8841-3PCC,{2000 + i},pw-{i:06d},Desk {i}\n")
EOF
xargs -a "$dir/group-params.txt" -d '\n' "$bin" group --data-dir "$dir/data" put defaults --allow-unknown >/dev/null 2>&1
"$bin" device --data-dir "$dir/data" import "$dir/devices.csv" 2>/dev/null
python3 - "$dir" <<'EOF'
import sqlite3, sys
d = sys.argv[1]
rows = sqlite3.connect(f"{d}/data/inventory.sqlite").execute("select path_token from devices order by mac").fetchall()
open(f"{d}/paths.txt", "w").write("".join(f"/profile/{t}/profile.cfg\n" for (t,) in rows))
EOF

cat >"$dir/provisor.toml" <<EOF
data_dir = "data"
[http]
listen = "127.0.0.1:$PORT_P"
[https]
listen = ""
[tftp]
listen = ""
[syslog]
listen = ""
[admin]
listen = ""
[provisioning]
# The benchmark fetches encrypted profiles at their random paths: no HTTPS, no certificates.
identity = "mac"
${GZIP_LEVEL:+gzip_level = $GZIP_LEVEL}
EOF
"$bin" serve --config "$dir/provisor.toml" 2>"$dir/provisor.log" &
prov_pid=$!
sleep 1

# Uncached: every request on a freshly started server renders, checks, gzips and encrypts.
cold=$("$load" http-once "127.0.0.1:$PORT_P" "$dir/paths.txt" 2)
[ "$(echo "$cold" | awk '/^failures/ {print $2}')" = 0 ] || { echo "cold pass failed: $cold" >&2; exit 1; }

# The same bytes for nginx (fetched once each from the now warm cache), and the plain-text size for the record.
mkdir -p "$dir/www"
python3 - "$dir" "$PORT_P" <<'EOF'
import http.client, os, sys
d, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
for p in open(f"{d}/paths.txt").read().split():
    c.request("GET", p); r = c.getresponse(); body = r.read()
    assert r.status == 200, (p, r.status)
    os.makedirs(os.path.dirname(f"{d}/www{p}"), exist_ok=True)
    open(f"{d}/www{p}", "wb").write(body)
EOF
plain_bytes=$("$bin" device --data-dir "$dir/data" render 0c1122000000 | wc -c)
cipher_bytes=$(stat -c %s "$(find "$dir/www" -name profile.cfg | head -1)")

# BEFORE_BIN: the other build, on a copy of the site (its own port, audit log and database), its cache warmed by one
# pass over every path.
PORT_B=18086
if [ -n "${BEFORE_BIN:-}" ]; then
  cp -r "$dir/data" "$dir/data-before"
  sed -e "s|data_dir = \"data\"|data_dir = \"data-before\"|" -e "s|127.0.0.1:$PORT_P|127.0.0.1:$PORT_B|" \
    "$dir/provisor.toml" >"$dir/provisor-before.toml"
  "$BEFORE_BIN" serve --config "$dir/provisor-before.toml" 2>"$dir/provisor-before.log" &
  before_pid=$!
  sleep 1
  warm=$("$load" http-once "127.0.0.1:$PORT_B" "$dir/paths.txt" 2)
  [ "$(echo "$warm" | awk '/^failures/ {print $2}')" = 0 ] || { echo "the before build's warm-up failed: $warm" >&2; exit 1; }
fi

cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
user root;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $dir/ngx-body;
  proxy_temp_path $dir/ngx-proxy;
  fastcgi_temp_path $dir/ngx-fcgi;
  uwsgi_temp_path $dir/ngx-uwsgi;
  scgi_temp_path $dir/ngx-scgi;
  server { listen 127.0.0.1:$PORT_N; root $dir/www; }
}
EOF
nginx -c "$dir/nginx.conf"
# NGINX_LOG=1: the same nginx, with a line per request in a buffered access log (as Provisor logs every request).
PORT_L=18083
if [ "${NGINX_LOG:-0}" = 1 ]; then
  sed -e "s|access_log off;|access_log $dir/nginx-access.log combined buffer=64k flush=1s;|" \
      -e "s|pid $dir/nginx.pid;|pid $dir/nginx-log.pid;|" -e "s|127.0.0.1:$PORT_N|127.0.0.1:$PORT_L|" \
      "$dir/nginx.conf" >"$dir/nginx-log.conf"
  nginx -c "$dir/nginx-log.conf"
fi
sleep 0.5

cat >"$dir/paths.lua" <<EOF
local paths = {}
for line in io.lines("$dir/paths.txt") do paths[#paths + 1] = line end
local i = 0
function init(args) i = math.random(#paths) end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
EOF

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v); print v} else {sub(/s/,"",v); print v*1000}}'; }
# CPU time (user + system, clock ticks) the processes PIDS... have used so far.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
# The machine's CPU counters (/proc/stat's first line): "total idle+iowait steal" in clock ticks.
machine_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6, $9}' /proc/stat; }
run_wrk() { # port pids... -> "rps p99ms cpu_us_per_request wrk_cpu_us_per_request idle% steal%"
  local out port=$1 before after rps m0 m1
  shift
  before=$(cpu_ticks "$@")
  m0=$(machine_ticks)
  out=$(/usr/bin/time -f 'wrk-cpu %U %S' wrk -t2 -c100 -d"${DURATION}s" --latency -s "$dir/paths.lua" "http://127.0.0.1:$port" 2>&1)
  m1=$(machine_ticks)
  after=$(cpu_ticks "$@")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx responses from port $port" >&2; echo "$out" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  # The server's CPU per request: what decides the rate when the server and wrk share the machine's two cores. Also
  # wrk's own CPU per request (a server whose answers cost the client more leaves it less of the machine), and how
  # much of the machine was idle or stolen by the host while it ran.
  echo "$rps $(echo "$out" | awk '$1 == "99%" {print $2}' | to_ms) $(echo "($after - $before) * 1000000 / $hz / ($rps * $DURATION)" | bc -l)" \
    "$(echo "$out" | awk -v n="$rps" -v d="$DURATION" '$1 == "wrk-cpu" {print ($2 + $3) * 1000000 / (n * d)}')" \
    "$(echo "$m0 $m1" | awk '{t = $4 - $1; print 100 * ($5 - $2) / t, 100 * ($6 - $3) / t}')"
}
# FLOOR=1: a third server in the rounds, `provisor-bench hyper-floor`: bare hyper on tokio answering every GET
# with the same bytes as nginx's files, from memory. The least Provisor's HTTP stack can cost; the rest is Provisor's own work.
PORT_F=18082
if [ "${FLOOR:-0}" = 1 ]; then
  "$load" hyper-floor "127.0.0.1:$PORT_F" "$dir/www" &
  floor_pid=$!
  sleep 0.5
fi
# HTTP1_FLOOR=1: `provisor-bench http1-floor`, an HTTP/1.1 loop without hyper, twice: bodies sent with `sendfile` from
# the page cache (as nginx does), and head and body with `writev` from memory (as hyper does).
PORT_S=18084 PORT_W=18085
if [ "${HTTP1_FLOOR:-0}" = 1 ]; then
  "$load" http1-floor "127.0.0.1:$PORT_S" "$dir/www" sendfile &
  sendfile_pid=$!
  "$load" http1-floor "127.0.0.1:$PORT_W" "$dir/www" writev &
  writev_pid=$!
  sleep 0.5
fi
n_rps=() p_rps=() n_p99=() p_p99=() f_rps=() f_p99=() l_rps=() l_p99=() n_cpu=() p_cpu=() f_cpu=()
s_rps=() s_p99=() s_cpu=() w_rps=() w_p99=() w_cpu=() b_rps=() b_p99=() b_cpu=()
n_wrk=() p_wrk=() n_idle=() p_idle=() n_steal=() p_steal=()
# The processes whose CPU is counted: nginx's workers (not its idle master), Provisor, the floor.
nginx_workers=$(pgrep -P "$(cat "$dir/nginx.pid")" | tr '\n' ' ')
for _ in $(seq "$ROUNDS"); do
  read -r a b c d e f <<<"$(run_wrk $PORT_N $nginx_workers)"; n_rps+=("$a"); n_p99+=("$b"); n_cpu+=("$c")
  n_wrk+=("$d"); n_idle+=("$e"); n_steal+=("$f")
  read -r a b c d e f <<<"$(run_wrk $PORT_P $prov_pid)"; p_rps+=("$a"); p_p99+=("$b"); p_cpu+=("$c")
  p_wrk+=("$d"); p_idle+=("$e"); p_steal+=("$f")
  if [ -n "${BEFORE_BIN:-}" ]; then read -r a b c _ <<<"$(run_wrk $PORT_B $before_pid)"; b_rps+=("$a"); b_p99+=("$b"); b_cpu+=("$c"); fi
  if [ "${FLOOR:-0}" = 1 ]; then read -r a b c _ <<<"$(run_wrk $PORT_F $floor_pid)"; f_rps+=("$a"); f_p99+=("$b"); f_cpu+=("$c"); fi
  if [ "${NGINX_LOG:-0}" = 1 ]; then read -r a b c _ <<<"$(run_wrk $PORT_L)"; l_rps+=("$a"); l_p99+=("$b"); fi
  if [ "${HTTP1_FLOOR:-0}" = 1 ]; then
    read -r a b c _ <<<"$(run_wrk $PORT_S $sendfile_pid)"; s_rps+=("$a"); s_p99+=("$b"); s_cpu+=("$c")
    read -r a b c _ <<<"$(run_wrk $PORT_W $writev_pid)"; w_rps+=("$a"); w_p99+=("$b"); w_cpu+=("$c")
  fi
done
nr=$(printf '%s\n' "${n_rps[@]}" | median); pr=$(printf '%s\n' "${p_rps[@]}" | median)
np=$(printf '%s\n' "${n_p99[@]}" | median); pp=$(printf '%s\n' "${p_p99[@]}" | median)
nc=$(printf '%s\n' "${n_cpu[@]}" | median); pc=$(printf '%s\n' "${p_cpu[@]}" | median)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$prov_pid/status")
audit=$(cat "$dir"/data/audit.log* | wc -l)

echo "profile: $plain_bytes bytes rendered, $cipher_bytes bytes served (gzip + AES-256-CBC); $DEVICES devices; wrk -t2 -c100 -d${DURATION}s, $ROUNDS alternating rounds, medians"
echo
echo "| measurement | nginx (static files) | Provisor | ratio (Provisor / nginx) |"
echo "|---|---|---|---|"
printf '| cached per-device responses, requests/s | %.0f | %.0f | %.2f× |\n' "$nr" "$pr" "$(echo "$pr / $nr" | bc -l)"
printf '| p99 latency under that load | %.2f ms | %.2f ms | |\n' "$np" "$pp"
printf '| server CPU per request (user + system) | %.1f µs | %.1f µs | %.2f× |\n' "$nc" "$pc" "$(echo "$pc / $nc" | bc -l)"
nw=$(printf '%s\n' "${n_wrk[@]}" | median); pw=$(printf '%s\n' "${p_wrk[@]}" | median)
printf '| wrk CPU per request (the client side of the same machine) | %.1f µs | %.1f µs | %.2f× |\n' "$nw" "$pw" "$(echo "$pw / $nw" | bc -l)"
printf '| machine idle / stolen by the host while wrk ran | %.1f %% / %.1f %% | %.1f %% / %.1f %% | |\n' \
  "$(printf '%s\n' "${n_idle[@]}" | median)" "$(printf '%s\n' "${n_steal[@]}" | median)" \
  "$(printf '%s\n' "${p_idle[@]}" | median)" "$(printf '%s\n' "${p_steal[@]}" | median)"
if [ "${FLOOR:-0}" = 1 ]; then
  fr=$(printf '%s\n' "${f_rps[@]}" | median); fp=$(printf '%s\n' "${f_p99[@]}" | median)
  fc=$(printf '%s\n' "${f_cpu[@]}" | median)
  printf '| bare hyper, the same bytes from memory (FLOOR=1): requests/s, p99, CPU per request | %.0f, %.2f ms, %.1f µs | — | %.2f× nginx |\n' \
    "$fr" "$fp" "$fc" "$(echo "$fr / $nr" | bc -l)"
fi
if [ -n "${BEFORE_BIN:-}" ]; then
  br=$(printf '%s\n' "${b_rps[@]}" | median); bp=$(printf '%s\n' "${b_p99[@]}" | median)
  bc_=$(printf '%s\n' "${b_cpu[@]}" | median)
  printf '| the BEFORE_BIN build, the same site: requests/s, p99, CPU per request | %.0f, %.2f ms, %.1f µs | — | %.2f× nginx |\n' \
    "$br" "$bp" "$bc_" "$(echo "$br / $nr" | bc -l)"
  echo "per round, requests/s (nginx, Provisor, before): $(for i in "${!n_rps[@]}"; do printf '%.0f/%.0f/%.0f ' "${n_rps[$i]}" "${p_rps[$i]}" "${b_rps[$i]}"; done)" >&2
fi
if [ "${HTTP1_FLOOR:-0}" = 1 ]; then
  med() { local -n values=$1; printf '%s\n' "${values[@]}" | median; }
  for v in s w; do
    name=$([ $v = s ] && echo "sendfile from the page cache" || echo "writev from memory")
    r=$(med ${v}_rps)
    printf '| an HTTP/1.1 loop without hyper (HTTP1_FLOOR=1), %s: requests/s, p99, CPU per request | %.0f, %.2f ms, %.1f µs | — | %.2f× nginx |\n' \
      "$name" "$r" "$(med ${v}_p99)" "$(med ${v}_cpu)" "$(echo "$r / $nr" | bc -l)"
  done
fi
if [ "${NGINX_LOG:-0}" = 1 ]; then
  lr=$(printf '%s\n' "${l_rps[@]}" | median); lp=$(printf '%s\n' "${l_p99[@]}" | median)
  printf '| nginx with a buffered access log (NGINX_LOG=1): requests/s, p99; Provisor / it | %.0f, %.2f ms | — | %.2f× |\n' \
    "$lr" "$lp" "$(echo "$pr / $lr" | bc -l)"
fi
echo
echo "| Provisor only | value |"
echo "|---|---|"
printf '| uncached render + lint + gzip + encrypt, 2 keep-alive clients | %s req/s (p50 %s ms, p99 %s ms) |\n' \
  "$(echo "$cold" | awk '/^rate/ {print $2}')" "$(echo "$cold" | awk '/^p50_ms/ {print $2}')" "$(echo "$cold" | awk '/^p99_ms/ {print $2}')"
printf '| peak RSS of the server over the whole run | %.0f MB |\n' "$(echo "$rss / 1024" | bc -l)"
printf '| audit-log lines left at the end (audit.log rotates at 256 MiB, one old file kept) | %s |\n' "$audit"
