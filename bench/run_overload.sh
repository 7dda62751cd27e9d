#!/usr/bin/env bash
# Overload and soak of `promptune serve` (issue 15), on loopback only, with the 16 SmolLM2-135M
# SST-2 adapters of bench/run_serve.sh (bench/serve_common.sh trains and copies them).
#
#   MODELS_DIR=... SST2_DIR=... PYTHON=... bash bench/run_overload.sh [--seconds S] [--soak S]
#        [--soak-clients N] [--out FILE]
#
# Overload: promptune serve with a short queue and deadline (--queue 32 --deadline-ms 5000)
# and the PEFT baseline (bench/peft_server.py, no queue bound) at 16, 64 and 128 closed-loop
# clients for S seconds each (default 30): throughput, answers by status (429 = queue full,
# 504 = past the deadline) and p50 / p99 latency of all answers. Soak: promptune serve (default
# settings) at N clients (default 4: about 80% of its saturation in run_serve.sh) for S seconds
# (default 600), its resident memory sampled every 30 s. Writes bench/results/serve_overload.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=30 soak=600 soak_clients=4
out=$root/bench/results/serve_overload.json
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --soak-clients) soak_clients=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
source "$root/bench/serve_common.sh"
make_adapters
load() { "$python" "$root/bench/load_serve.py" "$@" --seconds "$seconds" >&2; }

pid=$(start "$work/ours.log" "$bin" serve --model "$gguf" --adapters "$work/adapters" --port 18181 \
  --queue 32 --deadline-ms 5000)
pids+=("$pid")
load http://127.0.0.1:18181 "$list" "$sst2/dev.tsv" "$work/ours.json" --concurrency 16,64,128 --pid "$pid"
stop "$pid"

pid=$(start "$work/peft.log" "$python" "$root/bench/peft_server.py" "$models_dir" 18182 "${peft_args[@]}" --threads 2)
pids+=("$pid")
load http://127.0.0.1:18182 "$list" "$sst2/dev.tsv" "$work/peft.json" --concurrency 16,64,128 --pid "$pid"
stop "$pid"

pid=$(start "$work/soak.log" "$bin" serve --model "$gguf" --adapters "$work/adapters" --port 18181)
pids+=("$pid")
( while kill -0 "$pid" 2>/dev/null; do echo "$(date +%s) $(rss "$pid")"; sleep 30; done ) > "$work/rss.txt" &
pids+=($!)
"$python" "$root/bench/load_serve.py" http://127.0.0.1:18181 "$list" "$sst2/dev.tsv" "$work/soak.json" \
  --concurrency "$soak_clients" --seconds "$soak" --pid "$pid" >&2
echo "$(date +%s) $(rss "$pid")" >> "$work/rss.txt"
stop "$pid"

"$python" - "$work/ours.json" "$work/peft.json" "$work/soak.json" "$work/rss.txt" "$out" "$seconds" <<'PY'
import json, platform, sys
ours, peft, soak = (json.load(open(p)) for p in sys.argv[1:4])
samples = [tuple(map(float, l.split())) for l in open(sys.argv[4]) if l.strip()]
t0 = samples[0][0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
result = {
    "what": "promptune serve (--queue 32 --deadline-ms 5000) vs the PeftModel + set_adapter server at 16 / 64 / "
            "128 closed-loop clients; then a soak of promptune serve (default settings); 16 SmolLM2-135M SST-2 "
            "adapters (prompt tuning, P-Tuning, prefix tuning; 3 trained briefly, copied), one sentence per "
            "request, loopback",
    "cpu": cpu, "threads": 2, "seconds_per_level": float(sys.argv[6]),
    "overload": [{"concurrency": o["concurrency"], "promptune": o, "peft": p} for o, p in zip(ours["levels"], peft["levels"])],
    "soak": soak["levels"][0],
    "soak_rss_mib": [[round(t - t0), round(m, 1)] for t, m in samples],
}
json.dump(result, open(sys.argv[5], "w"), indent=1)
print(json.dumps(result, indent=1))
PY
