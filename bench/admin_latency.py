"""Latency of the admin API and web UI under sequential requests over one keep-alive connection.

  python3 bench/admin_latency.py HOST:PORT MACS_FILE COUNT HEADER PATH_TEMPLATE

PATH_TEMPLATE has {after} (a random MAC from MACS_FILE). HEADER is sent with every request ("Authorization: Bearer
..." or "Cookie: ..."). Prints count, status counts and p50/p90/p99/max in ms (time to the whole response).
"""

import http.client
import random
import sys
import time

host, macs_file, count, header, template = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
macs = open(macs_file).read().split()
name, value = header.split(": ", 1)
conn = http.client.HTTPConnection(host, timeout=30)
times, statuses = [], {}
random.seed(18)
for i in range(count):
    path = template.format(after=random.choice(macs))
    start = time.perf_counter()
    conn.request("GET", path, headers={name: value})
    r = conn.getresponse()
    body = r.read()
    times.append((time.perf_counter() - start) * 1000)
    statuses[r.status] = statuses.get(r.status, 0) + 1
times.sort()
q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
print(f"n={len(times)} status={statuses} p50={q(0.5):.2f}ms p90={q(0.9):.2f}ms p99={q(0.99):.2f}ms "
      f"max={times[-1]:.2f}ms last_body={len(body)}B")
