"""Load generator for `promptune serve` and its PEFT baseline (stdlib only): closed-loop
clients, each sending POST /v1/classify with one SST-2 sentence for an adapter drawn uniformly
from the list, for a fixed time per concurrency level.

    python bench/load_serve.py URL ADAPTERS SENTENCES_TSV OUT.json [--concurrency 1,4,16]
        [--seconds 30] [--seed 0] [--pid PID]

ADAPTERS: comma-separated names. SENTENCES_TSV: SST-2's dev.tsv (sentence<TAB>label, header).
Per level: requests sent, answered 200, errors by status, throughput (200s per second), p50 /
p99 latency of all answers, and with --pid the server's peak resident memory (VmHWM) so far. A
client told 429 with Retry-After waits that long before its next request.
"""
import argparse
import http.client
import json
import random
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("url")
ap.add_argument("adapters")
ap.add_argument("sentences")
ap.add_argument("out")
ap.add_argument("--concurrency", default="1,4,16")
ap.add_argument("--seconds", type=float, default=30)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--pid", type=int)
args = ap.parse_args()

adapters = args.adapters.split(",")
with open(args.sentences) as f:
    sentences = [line.split("\t")[0] for line in f.read().splitlines()[1:] if line.strip()]
url = urllib.parse.urlparse(args.url)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


def client(seed, until, out):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    while time.time() < until:
        body = json.dumps({"adapter": rng.choice(adapters), "inputs": [rng.choice(sentences)]})
        start = time.time()
        try:
            conn.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            retry_after = resp.getheader("Retry-After")
        except Exception:
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
            status, retry_after = 0, None
        out.append((status, time.time() - start))
        if status == 429 and retry_after:
            # a well-behaved client waits as told before it tries again
            time.sleep(min(float(retry_after), max(0.0, until - time.time())))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


levels = []
for c in [int(x) for x in args.concurrency.split(",")]:
    until = time.time() + args.seconds
    results = [[] for _ in range(c)]
    threads = [threading.Thread(target=client, args=(args.seed * 1000 + i, until, results[i])) for i in range(c)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    answers = [r for rs in results for r in rs]
    ok = [lat for s, lat in answers if s == 200]
    errors = {}
    for s, _ in answers:
        if s != 200:
            errors[str(s)] = errors.get(str(s), 0) + 1
    level = {
        "concurrency": c,
        "seconds": round(elapsed, 2),
        "requests": len(answers),
        "ok": len(ok),
        "errors": errors,
        "requests_per_second": round(len(ok) / elapsed, 2),
        "p50_ms": round(1000 * pct([lat for _, lat in answers], 0.5), 1) if answers else None,
        "p99_ms": round(1000 * pct([lat for _, lat in answers], 0.99), 1) if answers else None,
    }
    if args.pid:
        level["peak_rss_mib"] = round(peak_rss_mib(args.pid), 1)
    print(json.dumps(level), flush=True)
    levels.append(level)
with open(args.out, "w") as f:
    json.dump({"url": args.url, "adapters": adapters, "levels": levels}, f, indent=1)
