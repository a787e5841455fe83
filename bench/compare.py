"""Runs the reference tools beside Provisor and prints a Markdown table of medians and ratios."""
import re, statistics, subprocess, sys, time, xml.etree.ElementTree as ET, os

out, provisor = sys.argv[1], sys.argv[2]
ours = {}
for line in open(os.path.join(out, "provisor.txt")):
    k, v, *_ = line.split()
    ours[k] = float(v)

def median_time(fn, rounds=9, inner=20):
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)

profile = open(os.path.join(out, "profile-1000.xml"), "rb").read()
def et_parse():
    root = ET.fromstring(profile)
    {e.tag: (e.text or "").strip() for fp in root.iter("flat-profile") for e in fp}
et = median_time(et_parse)
et_mb_s = len(profile) / et / 1e6

# openssl's own in-process AES-256-CBC throughput on 1 MiB buffers.
speed = subprocess.run(["openssl", "speed", "-evp", "aes-256-cbc", "-bytes", str(1 << 20), "-seconds", "3"],
                       capture_output=True, text=True).stdout
m = re.search(r"^aes-256-cbc\s+([\d.]+)k", speed, re.M | re.I)
ossl_mb_s = float(m.group(1)) * 1000 / 1e6 if m else float("nan")

# Whole commands on the same 1 MiB input: openssl enc vs provisor profile encrypt (process start included).
blob = os.path.join(out, "blob-1m.bin")
def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ossl_cmd = median_time(lambda: run(["openssl", "enc", "-e", "-aes-256-cbc", "-md", "sha256", "-k", "SecretPhrase1234", "-in", blob, "-out", "/dev/null"]), inner=5)
ours_cmd = median_time(lambda: run([provisor, "profile", "encrypt", blob, "-o", "/dev/null", "--key", "SecretPhrase1234"]), inner=5)

rows = [
    ("parse only, same profile", "%.1f MB/s" % ours["parse_only_mb_s"], "Python ElementTree parse only: %.1f MB/s" % et_mb_s,
     "%.2f×" % (ours["parse_only_mb_s"] / et_mb_s), "—"),
    ("parse + apply, 1,000-parameter profile (%d bytes)" % ours["profile_bytes"], "%.1f MB/s (%.0f µs)" % (ours["parse_apply_mb_s"], ours["parse_apply_us"]),
     "Python ElementTree parse only: %.1f MB/s" % et_mb_s, "%.2f×" % (ours["parse_apply_mb_s"] / et_mb_s), "≥ 300 MB/s"),
    ("parse + apply, the same with all 1,000 names distinct", "%.1f MB/s" % ours["parse_apply_distinct_mb_s"], "—", "—", "report"),
    ("AES-256-CBC encrypt, 1 MiB, in process", "%.0f MB/s" % ours["aes256cbc_encrypt_mb_s"],
     "openssl speed -evp aes-256-cbc: %.0f MB/s" % ossl_mb_s, "%.2f×" % (ours["aes256cbc_encrypt_mb_s"] / ossl_mb_s), "≥ 0.8×"),
    ("AES-256-CBC encrypt, 1 MiB file, whole command", "%.2f ms" % (ours_cmd * 1e3),
     "openssl enc: %.2f ms" % (ossl_cmd * 1e3), "%.2f× (time ratio openssl/provisor)" % (ossl_cmd / ours_cmd), "≥ 0.8×"),
    ("gzip + encrypt, %d-byte profile" % ours["profile_50k_bytes"], "%.0f µs per profile" % ours["gzip_encrypt_50k_us"], "—", "—", "report"),
]
print()
print("| measurement | Provisor | reference | ratio | target |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
