#!/usr/bin/env bash
# Long fuzzing (issue "Hardening", item 7): every cargo-fuzz target for a set time on nightly, one after the other;
# records executions, coverage and findings, and rewrites the "Fuzzing" section of BENCHMARKS.md between its markers.
# The goal is at least 10,000,000 executions per parser; the table says which targets have reached it.
#   bash bench/fuzz.sh                           10 minutes per target
#   SECONDS_PER_TARGET=60 bash bench/fuzz.sh     shorter
#   TARGETS="tftp_packet rule_parse" bash bench/fuzz.sh
# The corpus (fuzz/corpus, not committed) grows from run to run. Exits 1 if any target found a crash, leak, timeout
# or out-of-memory input (saved under fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")/.."
per="${SECONDS_PER_TARGET:-600}"
goal=10000000
rustup toolchain list | grep -q nightly || { echo "the nightly toolchain is missing (rustup toolchain install nightly)"; exit 1; }
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
logs="$(mktemp -d)"
cd fuzz
targets="${TARGETS:-$(cargo +nightly fuzz list)}"
cargo +nightly fuzz build -O >/dev/null 2>&1 || cargo +nightly fuzz build -O
rows=""
failed=0
started="$(date -u +%Y-%m-%d)"
for t in $targets; do
  log="$logs/$t.log"
  mkdir -p "artifacts/$t" "corpus/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "fuzzing $t for ${per}s ..." >&2
  status=ok
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$per" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=failed
  runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1)
  runs=${runs:-$(grep -oE 'Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -1)}
  runs=${runs:-0}
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corpus=$(find "corpus/$t" -type f | wc -l)
  after=$(find "artifacts/$t" -type f | wc -l)
  findings=$((after - before))
  if [ "$status" != ok ] || [ "$findings" -gt 0 ]; then
    failed=1
    what="$findings new in fuzz/artifacts/$t"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" | head -n 3 >&2 || true
  else
    what="none"
  fi
  per_s=$(awk -v r="$runs" -v s="$per" 'BEGIN { printf "%d", r / s }')
  if [ "$runs" -ge "$goal" ]; then reached="reached"; else
    need=$(awk -v g="$goal" -v p="$per_s" 'BEGIN { if (p > 0) printf "%.0f min at this rate", g / p / 60; else print "-" }')
    reached="not yet ($need)"
  fi
  printf '%-20s %12s runs  %8s/s  cov %-6s ft %-7s corpus %-6s findings: %s\n' "$t" "$runs" "$per_s" "${cov:-?}" \
    "${ft:-?}" "$corpus" "$what" >&2
  rows+="| \`$t\` | $(printf "%'d" "$runs") | $(printf "%'d" "$per_s") | ${cov:-?} | ${ft:-?} | $corpus | $what | $reached |"$'\n'
done
cd ..
section="<!-- fuzz:begin -->
Command: \`SECONDS_PER_TARGET=$per bash bench/fuzz.sh\` (cargo-fuzz, libFuzzer on nightly, \`-O\`, one target at a time,
${per} s each; run of $started; corpus carried over from earlier runs on this machine). Goal: ≥ 10,000,000
executions per parser.

| target | executions | per second | coverage (cov) | features (ft) | corpus | findings | 10,000,000 |
|---|---|---|---|---|---|---|---|
${rows}<!-- fuzz:end -->"
SECTION="$section" python3 - <<'EOF'
import os, re
path = "BENCHMARKS.md"
text = open(path).read()
section = os.environ["SECTION"]
if "<!-- fuzz:begin -->" in text:
    text = re.sub(r"<!-- fuzz:begin -->.*?<!-- fuzz:end -->", lambda _: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n## Fuzzing (issue \"Hardening\", item 7)\n\n" + section + "\n"
open(path, "w").write(text)
EOF
echo "BENCHMARKS.md updated (section Fuzzing); logs in $logs" >&2
exit "$failed"
