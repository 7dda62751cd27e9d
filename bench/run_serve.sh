#!/usr/bin/env bash
# Load test of `promptune serve` against the server a PEFT user would build (bench/peft_server.py:
# PeftModel + set_adapter per request), side by side in one run, on loopback only.
#
#   MODELS_DIR=... SST2_DIR=... PYTHON=... bash bench/run_serve.sh [--seconds S] [--out FILE]
#
# Needs ../shared (SST-2) or any GLUE SST-2 folder, the models of scripts/fetch-models.sh and the
# reference venv (../shared/reference/setup.sh). Three SmolLM2-135M adapters are trained briefly
# from the SST-2 examples (prompt tuning, P-Tuning, prefix tuning; the first 160 training
# sentences, 10 steps: the load test measures serving, not accuracy) and each is copied to make
# 16 adapters (names sst2-<method>-<i>), exported with export-peft for the baseline. Both
# servers get the same 16 adapters and 2 threads; the load generator (bench/load_serve.py)
# drives closed-loop clients with one dev sentence per request for a uniformly drawn adapter at
# concurrency 1, 4 and 16. Memory per extra adapter: the resident memory of promptune serve with
# 16 adapters less that with 1, over 15. Writes bench/results/serve_load.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=30
out=$root/bench/results/serve_load.json
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
source "$root/bench/serve_common.sh"
make_adapters

pid=$(start "$work/one.log" "$bin" serve --model "$gguf" --adapters "$work/one" --port 18181)
pids+=("$pid"); rss_one=$(rss "$pid"); stop "$pid"
pid=$(start "$work/ours.log" "$bin" serve --model "$gguf" --adapters "$work/adapters" --port 18181)
pids+=("$pid"); rss_all=$(rss "$pid")
"$python" "$root/bench/load_serve.py" http://127.0.0.1:18181 "$list" "$sst2/dev.tsv" "$work/ours.json" \
  --seconds "$seconds" --pid "$pid" >&2
stop "$pid"

pid=$(start "$work/peft.log" "$python" "$root/bench/peft_server.py" "$models_dir" 18182 "${peft_args[@]}" --threads 2)
pids+=("$pid"); rss_peft=$(rss "$pid")
"$python" "$root/bench/load_serve.py" http://127.0.0.1:18182 "$list" "$sst2/dev.tsv" "$work/peft.json" \
  --seconds "$seconds" --pid "$pid" >&2
stop "$pid"

"$python" - "$work/ours.json" "$work/peft.json" "$out" "$rss_one" "$rss_all" "$rss_peft" "$seconds" <<'PY'
import json, platform, sys
ours, peft = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
one, all16, peft_rss, seconds = map(float, sys.argv[4:8])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
levels = []
for o, p in zip(ours["levels"], peft["levels"]):
    levels.append({"concurrency": o["concurrency"], "promptune": o, "peft": p,
                   "throughput_ratio": round(o["requests_per_second"] / max(p["requests_per_second"], 1e-9), 2)})
result = {
    "what": "promptune serve vs a PeftModel + set_adapter HTTP server, 16 SmolLM2-135M SST-2 adapters "
            "(prompt tuning, P-Tuning, prefix tuning; 3 trained briefly, copied), uniform mix, one sentence "
            "per request, closed-loop clients, loopback",
    "cpu": cpu, "threads": 2, "seconds_per_level": seconds,
    "promptune_rss_mib_1_adapter": round(one, 1), "promptune_rss_mib_16_adapters": round(all16, 1),
    "promptune_mib_per_extra_adapter": round((all16 - one) / 15, 2),
    "peft_rss_mib_16_adapters_at_start": round(peft_rss, 1),
    "levels": levels,
}
json.dump(result, open(sys.argv[3], "w"), indent=1)
print(json.dumps(result, indent=1))
PY
