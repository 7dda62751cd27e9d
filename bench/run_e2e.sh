#!/usr/bin/env bash
# Prefix-Tuning on E2E NLG with SmolLM2-135M: promptune and HF PEFT side by side, in one run.
#
#   MODELS_DIR=DIR E2E_DIR=DIR PYTHON=/path/to/python bash bench/run_e2e.sh \
#       [--train-mrs N] [--test-mrs N] [--out FILE]
#
# Setup (examples/e2e-smollm2-prefix.toml; tests/reference/peft_e2e.py does the same in PEFT):
# 10 prefix positions trained directly, both sides from the same start (promptune's prefix from
# word activations, trained 0 steps and exported with export-peft); the training pairs are every
# reference of the first N meaning representations of trainset.csv (default 60: 500-odd pairs);
# input = linearised source, "\n", target (at most 63 tokens) and eos, loss on target and eos;
# batch 8, 1 epoch, AdamW lr 1e-2 without weight decay, linear decay, clipping 1.0. Both sides
# decode the first M distinct meaning representations of testset_w_refs.csv (default 50) one at
# a time with 5 beams and at most 64 new tokens; `promptune metrics` scores both sides'
# hypotheses against the same grouped references. Writes bench/results/e2e_prefix.json.
#
# Needs DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf (bash scripts/fetch-models.sh),
# E2E_DIR with trainset.csv, devset.csv and testset_w_refs.csv (../shared/data/e2e-nlg on the
# project machines) and PYTHON with torch, transformers, peft and gguf
# (bash ../shared/reference/setup.sh). One side after the other on the otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bench/results/e2e_prefix.json
train_mrs=60
test_mrs=50
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --train-mrs) train_mrs=$2; shift 2 ;;
    --test-mrs) test_mrs=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
e2e=${E2E_DIR:?set E2E_DIR to a folder with the E2E NLG CSV files}
python=${PYTHON:?set PYTHON to a python with torch, transformers, peft and gguf}
gguf="$models_dir/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"
bin="$root/target/release/promptune"
sets=(--set "model=$gguf" --set "data.train.path=$e2e/trainset.csv" --set "data.train.limit=$train_mrs"
      --set "data.dev.path=$e2e/devset.csv" --set "data.dev.limit=5")
test=(--data "$e2e/testset_w_refs.csv" --format e2e --limit "$test_mrs")
load_before=$(cat /proc/loadavg)

echo "== promptune: the starting prefix, exported for PEFT" >&2
"$bin" train --config "$root/examples/e2e-smollm2-prefix.toml" "${sets[@]}" --set train.max_steps=0 \
    --set "output_dir=$work/start" > /dev/null
"$bin" export-peft --adapter "$work/start/adapter" --out "$work/start-peft" >&2
echo "== promptune train" >&2
"$bin" train --config "$root/examples/e2e-smollm2-prefix.toml" "${sets[@]}" --set "output_dir=$work/run" > /dev/null
echo "== promptune decode ($test_mrs test representations, 5 beams)" >&2
"$bin" predict --adapter "$work/run/adapter" "${test[@]}" --output "$work/ours.jsonl" --scores "$work/ours_scores.json"
echo "== PEFT train and decode" >&2
"$python" "$root/tests/reference/peft_e2e.py" "$models_dir" "$e2e" "$work/ours.jsonl" "$work/peft" \
    --train-mrs "$train_mrs" --init-from "$work/start-peft" --threads 2 > /dev/null
load_after=$(cat /proc/loadavg)

"$python" - "$work/ours.jsonl" "$work/refs.txt" "$work/ours.txt" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    f.write("\n\n".join("\n".join(l["references"]) for l in lines) + "\n")
with open(sys.argv[3], "w") as f:
    f.write("\n".join(l["generation"].replace("\n", " ") for l in lines) + "\n")
PY
"$bin" metrics --hypotheses "$work/ours.txt" --references "$work/refs.txt" --json > "$work/ours_metrics.json"
"$bin" metrics --hypotheses "$work/peft/hypotheses.txt" --references "$work/refs.txt" --json > "$work/peft_metrics.json"

"$python" - "$work" "$out" "$load_before" "$load_after" "$train_mrs" "$test_mrs" <<'PY'
import json, os, platform, sys
work, out, before, after, train_mrs, test_mrs = sys.argv[1:7]
read = lambda name: json.load(open(os.path.join(work, name)))
ours, scores, peft = read("run/results.json"), read("ours_scores.json"), read("peft/peft.json")
om, pm = read("ours_metrics.json"), read("peft_metrics.json")
assert ours["train_examples"] == peft["train_pairs"], (ours["train_examples"], peft["train_pairs"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
keys = ["bleu", "nist", "rouge_l", "cider"]
result = {
    "setup": f"SmolLM2-135M-Instruct Q4_1 GGUF, E2E: every reference of the first {train_mrs} training "
             f"meaning representations ({ours['train_examples']} pairs), 1 epoch, batch 8, AdamW lr 1e-2, "
             "linear decay, clip 1.0; Prefix-Tuning, 10 positions, direct, both sides from promptune's "
             f"word-activation start; decoding: the first {test_mrs} distinct test representations, "
             "5 beams, 64 new tokens at most, one source at a time; scored by promptune metrics",
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_before": before, "loadavg_after": after},
    "promptune": {**{k: om[k] for k in keys}, "trainable_parameters": ours["trainable_parameters"],
                  "steps": ours["steps"], "seconds_per_step": ours["seconds_per_step"],
                  "peak_rss_mib": ours["peak_rss_mib"],
                  "generation_tokens_per_second": scores["tokens_per_second"]},
    "peft": {**{k: pm[k] for k in keys}, "trainable_parameters": peft["trainable_parameters"],
             "steps": peft["steps"], "seconds_per_step": peft["seconds_per_step"],
             "peak_rss_mib": peft["peak_rss_mib"],
             "generation_tokens_per_second": peft["generation_tokens_per_second"]},
}
p, q = result["promptune"], result["peft"]
result["promptune_minus_peft"] = {k: p[k] - q[k] for k in keys}
result["ratio_promptune_over_peft"] = {
    "seconds_per_step": p["seconds_per_step"] / q["seconds_per_step"],
    "peak_rss": p["peak_rss_mib"] / q["peak_rss_mib"],
    "generation_tokens_per_second": p["generation_tokens_per_second"] / q["generation_tokens_per_second"],
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
