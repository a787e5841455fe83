#!/usr/bin/env bash
# Enterprise phones (issue "Enterprise phones", item 6), loopback only, side by side in one run. Asserts nothing.
#   bash bench/enterprise.sh       (PHONES=10000 CONCURRENCY=200 ROUNDS=3 SIGN_S=3 by default)
# 1. Signing: .sgn signatures per second in process, against `openssl speed rsa2048` (the same RSA-2048 private-key
#    operation, OpenSSL's own ceiling); and per file as a command, `provisor trust sign` against `openssl dgst -sha1
#    -sign`, 100 files each.
# 2. PHONES enterprise phones each fetch ITLFile.tlv + SEP<MAC>.cnf.xml.sgn over TFTP: Provisor rendering, signing and
#    caching on the fly (the first, cold round), then warm, against tftpd-hpa serving the same signed bytes from disk.
# 3. `provisor loadtest --enterprise --phones PHONES` against the same server: simulated enterprise phones booting
#    within WINDOW (10 s) through the whole short list (HTTP 6970 first, the config over HTTPS 6971 from the ITL's EC
#    certificate), with the storm's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PHONES="${PHONES:-10000}"; CONCURRENCY="${CONCURRENCY:-200}"; ROUNDS="${ROUNDS:-3}"; SIGN_S="${SIGN_S:-3}"
cargo build --release -q -p provisor -p provisor-bench
bin="$PWD/target/release/provisor"
load="$PWD/target/release/provisor-bench"
dir="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" trust init "$dir/trust" --host 127.0.0.1 2>/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "== signing"
printf '<device><fullConfig>true</fullConfig>%s</device>\n' "$(head -c 3000 /dev/zero | tr '\0' 'x')" >"$dir/cfg.xml"
ours=$("$load" sign-rate "$dir/trust/tftp.pem" "$dir/cfg.xml" "$SIGN_S" | awk '{print $2}')
theirs=$(openssl speed -seconds "$SIGN_S" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
echo "in process: provisor ${ours} signs/s, openssl speed rsa2048 ${theirs} signs/s, ratio $(echo "$ours / $theirs" | bc -l | cut -c1-5)"
awk '/-----BEGIN PRIVATE KEY-----/,/-----END PRIVATE KEY-----/' "$dir/trust/tftp.pem" >"$dir/tftp.key"
s=$(date +%s.%N); for i in $(seq 100); do "$bin" trust sign "$dir/cfg.xml" --signer "$dir/trust/tftp.pem" -o "$dir/o.sgn" 2>/dev/null; done; e=$(date +%s.%N)
p=$(echo "($e - $s) * 10" | bc -l)
s=$(date +%s.%N); for i in $(seq 100); do openssl dgst -sha1 -sign "$dir/tftp.key" -out "$dir/o.sig" "$dir/cfg.xml"; done; e=$(date +%s.%N)
o=$(echo "($e - $s) * 10" | bc -l)
echo "per file as a command (ms): provisor trust sign $(printf %.2f "$p"), openssl dgst -sign $(printf %.2f "$o"), ratio (openssl/provisor) $(echo "$o / $p" | bc -l | cut -c1-5)"

echo "== $PHONES phones: ITLFile.tlv + SEP<MAC>.cnf.xml.sgn over TFTP, $CONCURRENCY at a time"
{
  echo "mac,model,User_ID_1_,Password_1_"
  for i in $(seq 0 $((PHONES - 1))); do printf '%012x,CP-8845,%d,pw-%d\n' $((0x000e08000000 + i)) $((1000 + i)) "$i"; done
} >"$dir/devices.csv"
cat >"$dir/provisor.toml" <<TOML
data_dir = "data"
[http]
listen = ""
[https]
listen = ""
[tftp]
listen = "127.0.0.1:17069"
max_sessions = 20000
max_sessions_per_address = 20000
[syslog]
listen = ""
[admin]
listen = ""
[provisioning]
identity = "mac"
[limits]
macs_per_address_per_minute = 100000
macs_per_minute = 100000
failed_lookups_per_minute = 100000
[enterprise]
trust_dir = "trust"
http_listen = "127.0.0.1:17071"
https_listen = "127.0.0.1:17072"
TOML
"$bin" group --config "$dir/provisor.toml" put defaults --param Proxy_1_=cucm.example.com >/dev/null 2>&1
"$bin" device --config "$dir/provisor.toml" import "$dir/devices.csv" >/dev/null 2>&1
RUST_LOG=warn "$bin" serve --config "$dir/provisor.toml" 2>"$dir/serve.log" &
sleep 2
mkdir -p "$dir/tftpboot"
cp "$dir/trust/ITLFile.tlv" "$dir/tftpboot/"
cold=$("$load" tftp-phones 127.0.0.1:17069 "$PHONES" "$CONCURRENCY" "$dir/tftpboot")
echo "provisor cold (render + sign + cache): $(echo "$cold" | tr '\n' ' ')"
/usr/sbin/in.tftpd -L -a 127.0.0.1:17070 -s "$dir/tftpboot" -u root &
sleep 1
h=(); p=()
for _ in $(seq "$ROUNDS"); do
  r=$("$load" tftp-phones 127.0.0.1:17070 "$PHONES" "$CONCURRENCY"); echo "tftpd-hpa: $(echo "$r" | tr '\n' ' ')"
  [ "$(echo "$r" | awk '/failures/ {print $2}')" = 0 ] || echo "tftpd-hpa had failures"
  h+=("$(echo "$r" | awk '/wall_s/ {print $2}')")
  r=$("$load" tftp-phones 127.0.0.1:17069 "$PHONES" "$CONCURRENCY"); echo "provisor:  $(echo "$r" | tr '\n' ' ')"
  [ "$(echo "$r" | awk '/failures/ {print $2}')" = 0 ] || echo "provisor had failures"
  p+=("$(echo "$r" | awk '/wall_s/ {print $2}')")
done
hm=$(printf '%s\n' "${h[@]}" | median); pm=$(printf '%s\n' "${p[@]}" | median)
echo "median wall (s): tftpd-hpa $hm, provisor warm $pm, ratio (tftpd-hpa/provisor) $(echo "$hm / $pm" | bc -l | cut -c1-5)"

WINDOW="${WINDOW:-10s}"
echo "== loadtest --enterprise: $PHONES phones booting within $WINDOW"
"$bin" loadtest --enterprise --dhcp-tftp 127.0.0.1:17069 --http-port 17071 --https-port 17072 --phones "$PHONES" \
  --first-mac 00:0e:08:00:00:00 --boot-window "$WINDOW" --phone-timeout 120s --chart "$dir/enterprise-storm.svg" 2>/dev/null
