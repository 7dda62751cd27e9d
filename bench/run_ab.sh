#!/usr/bin/env bash
# Two builds of promptune side by side on the same training configs, in one invocation: the
# accuracy each reaches (same seed, so a refactoring that keeps the numerics gives the same
# figures) and the seconds per training step, the runs alternating A, B, A, B ... so that both
# see the same machine. Writes one JSON object with every run and the B/A step-time ratio.
#
#   bash bench/run_ab.sh --a OLD/promptune --b NEW/promptune [--repeat N] [--out FILE] \
#       [--steps-only] [--set KEY=VALUE ...] CONFIG [CONFIG ...]
#
# CONFIG is a task config (examples/*.toml). Each build trains each config --repeat times (default
# 1) into a folder of its own under $TMPDIR; --steps-only trains 10 steps with no dev set (a
# quick step-time comparison); --set passes overrides to every run (a shorter schedule, a dev
# subset: `--set train.max_steps=40 --set data.dev.limit=200`). Needs what the configs need
# (models from scripts/fetch-models.sh, ../shared/data for the SST-2 examples).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
a="" b="" repeat=1 out="" steps_only=0 configs=() sets=() vals=()
while [ $# -gt 0 ]; do
  case "$1" in
    --a) a=$2; shift 2 ;;
    --b) b=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --steps-only) steps_only=1; shift ;;
    --set) sets+=(--set "$2"); vals+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) configs+=("$1"); shift ;;
  esac
done
[ -n "$a" ] && [ -n "$b" ] && [ ${#configs[@]} -gt 0 ] || { sed -n '2,15p' "$0"; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/promptune-ab.XXXXXX")
cd "$root"
runs="$work/runs.jsonl"
: > "$runs"
for config in "${configs[@]}"; do
  name=$(basename "$config" .toml)
  for i in $(seq 1 "$repeat"); do
    for side in a b; do
      bin=$a; [ "$side" = b ] && bin=$b
      dir="$work/$name-$side-$i"
      extra=("${sets[@]}")
      if [ "$steps_only" = 1 ]; then
        extra+=(--set train.max_steps=10 --set train.checkpoint_every=0 --set 'data.dev.limit=1')
      fi
      echo "== $name ($side, run $i)" >&2
      "$bin" train --config "$config" --set "output_dir=\"$dir\"" "${extra[@]}" > "$dir.json"
      python3 - "$dir.json" "$name" "$side" "$i" >> "$runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keep = {k: r.get(k) for k in ("initial_dev_accuracy", "final_dev_accuracy", "best_dev_metric",
        "final_dev_scores", "seconds_per_step", "steps", "trainable_parameters", "peak_rss_mib")}
print(json.dumps({"config": sys.argv[2], "build": sys.argv[3], "run": int(sys.argv[4]), **keep}))
PY
    done
  done
done
python3 - "$runs" "$a" "$b" "${vals[@]}" > "${out:-/dev/stdout}" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
summary = {}
for c in sorted({r["config"] for r in runs}):
    side = {s: [r for r in runs if r["config"] == c and r["build"] == s] for s in "ab"}
    step = {s: statistics.mean(r["seconds_per_step"] for r in side[s]) for s in "ab"}
    summary[c] = {
        "a_final_dev_accuracy": [r["final_dev_accuracy"] for r in side["a"]],
        "b_final_dev_accuracy": [r["final_dev_accuracy"] for r in side["b"]],
        "a_seconds_per_step": step["a"],
        "b_seconds_per_step": step["b"],
        "step_time_ratio_b_over_a": step["b"] / step["a"],
    }
print(json.dumps({"a": sys.argv[2], "b": sys.argv[3], "overrides": sys.argv[4:],
                  "summary": summary, "runs": runs}, indent=2))
PY
