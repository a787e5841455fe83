#!/usr/bin/env python3
"""Open-loop HTTP load at a fixed rate: GET /profile/<token>/profile.cfg for tokens drawn at random, RATE requests/s
for SECONDS, over CONNECTIONS keep-alive connections. Latency is measured from when each request was *scheduled*, so a
server that falls behind is charged for the queue (no coordinated omission). Prints count, errors, p50/p99/max in ms.

    fetch_rate.py HOST:PORT TOKENS_FILE [RATE=1000] [SECONDS=30] [CONNECTIONS=64]
"""
import asyncio, random, sys, time


async def worker(host, port, queue, lat, errors):
    reader = writer = None
    while True:
        item = await queue.get()
        if item is None:
            break
        scheduled, token = item
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /profile/{token}/profile.cfg HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if status != 200 or not body:
                errors.append(status)
            lat.append(time.perf_counter() - scheduled)
        except Exception as e:  # noqa: BLE001 - counted, and the connection is replaced
            errors.append(str(e))
            writer = None


async def main():
    target, tokens_file = sys.argv[1], sys.argv[2]
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 1000
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    host, port = target.rsplit(":", 1)
    tokens = [t.strip() for t in open(tokens_file) if t.strip()]
    rng = random.Random(1)
    queue = asyncio.Queue()
    lat, errors = [], []
    workers = [asyncio.create_task(worker(host, int(port), queue, lat, errors)) for _ in range(conns)]
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((at, rng.choice(tokens)))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    wall = time.perf_counter() - start
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")
    print(f"requests {n} in {wall:.1f} s ({n / wall:.0f}/s offered {rate:.0f}/s), errors {len(errors)}")
    print(f"latency_ms p50 {q(0.5):.2f} p99 {q(0.99):.2f} max {q(1.0) if lat else float('nan'):.2f}")


asyncio.run(main())
