#!/usr/bin/env bash
# Prompt Tuning on SST-2 with SmolLM2-135M: promptune and HF PEFT side by side, in one run.
#
#   MODELS_DIR=DIR SST2_DIR=DIR PYTHON=/path/to/python bash bench/run_sst2.sh [--out FILE]
#
# Setup (examples/sst2-smollm2.toml; tests/reference/peft_sst2.py does the same in PEFT):
# template "Review: {text_a}\nSentiment:{mask}" read at the next token, verbalizer
# " negative" / " positive", 20 soft tokens initialised from "Classify the sentiment of the
# review as positive or negative", AdamW lr 3e-2, the first 1,000 training rows, 1 epoch,
# batch 16, clipping 1.0; dev = the 872 GLUE dev rows.
#
# Needs DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf (bash scripts/fetch-models.sh),
# SST2_DIR with train_full.tsv and dev.tsv (GLUE SST-2: `sentence<TAB>label` with a header;
# ../shared/data/sst2-glue on the project machines), and PY with torch, transformers, peft
# and gguf (bash ../shared/reference/setup.sh). Runs one side after the other on the
# otherwise idle machine: promptune zero-shot, promptune train, then PEFT (zero-shot, train,
# dev), and writes bench/results/sst2.json with the figures and the ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/results/sst2.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
sst2=${SST2_DIR:?set SST2_DIR to a folder with GLUE SST-2 train_full.tsv and dev.tsv}
python=${PYTHON:?set PYTHON to a python with torch, transformers, peft and gguf}
gguf="$models_dir/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
for f in "$gguf" "$sst2/train_full.tsv" "$sst2/dev.tsv"; do
  [ -f "$f" ] || { echo "missing $f" >&2; exit 2; }
done

cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"
bin="$root/target/release/promptune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sets=(--set "model=$gguf" --set "data.train.path=$sst2/train_full.tsv"
      --set "data.dev.path=$sst2/dev.tsv" --set "output_dir=$work/run")
load_before=$(cat /proc/loadavg)

echo "== promptune zero-shot" >&2
"$bin" zero-shot --config "$root/examples/sst2-smollm2.toml" "${sets[@]}" > "$work/zero.json"
echo "== promptune train" >&2
"$bin" train --config "$root/examples/sst2-smollm2.toml" "${sets[@]}" > "$work/train.json"
echo "== PEFT" >&2
"$python" "$root/tests/reference/peft_sst2.py" "$models_dir" "$sst2" "$work/peft.json" > /dev/null
load_after=$(cat /proc/loadavg)

"$python" - "$work" "$out" "$load_before" "$load_after" <<'PY'
import json, os, platform, sys
work, out, before, after = sys.argv[1:5]
read = lambda name: json.load(open(os.path.join(work, name)))
zero, ours, peft = read("zero.json"), read("run/results.json"), read("peft.json")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
result = {
    "setup": "SmolLM2-135M-Instruct Q4_1 GGUF, SST-2, 20 soft tokens (text init), lr 3e-2, 1,000 train rows, 1 epoch, batch 16, dev 872",
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_before": before, "loadavg_after": after},
    "promptune": {
        "zero_shot_dev_accuracy": zero["accuracy"],
        "zero_shot_examples_per_second": zero["examples_per_second"],
        "prompt_tuning_dev_accuracy": ours["final_dev_accuracy"],
        "seconds_per_step": ours["seconds_per_step"],
        "steps": ours["steps"],
        "dev_examples_per_second": ours["dev_examples_per_second"],
        "peak_rss_mib": ours["peak_rss_mib"],
        "trainable_parameters": ours["trainable_parameters"],
    },
    "peft": peft,
}
p = result["promptune"]
result["ratio_promptune_over_peft"] = {
    "seconds_per_step": p["seconds_per_step"] / peft["seconds_per_step"],
    "peak_rss": p["peak_rss_mib"] / peft["peak_rss_mib"],
    "dev_examples_per_second": p["dev_examples_per_second"] / peft["dev_examples_per_second"],
    "zero_shot_examples_per_second": p["zero_shot_examples_per_second"] / peft["zero_shot_examples_per_second"],
}
result["accuracy_points_promptune_minus_peft"] = {
    "zero_shot": 100 * (p["zero_shot_dev_accuracy"] - peft["zero_shot_dev_accuracy"]),
    "prompt_tuning": 100 * (p["prompt_tuning_dev_accuracy"] - peft["prompt_tuning_dev_accuracy"]),
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=2)
rows = [("zero-shot dev accuracy", p["zero_shot_dev_accuracy"] * 100, peft["zero_shot_dev_accuracy"] * 100),
        ("prompt-tuning dev accuracy", p["prompt_tuning_dev_accuracy"] * 100, peft["prompt_tuning_dev_accuracy"] * 100),
        ("train s/step", p["seconds_per_step"], peft["seconds_per_step"]),
        ("peak RSS MiB", p["peak_rss_mib"], peft["peak_rss_mib"]),
        ("dev scoring ex/s (trained)", p["dev_examples_per_second"], peft["dev_examples_per_second"]),
        ("dev scoring ex/s (zero-shot)", p["zero_shot_examples_per_second"], peft["zero_shot_examples_per_second"])]
print(f"{'':30} {'promptune':>10} {'PEFT':>10} {'ratio':>7}")
for name, a, b in rows:
    print(f"{name:30} {a:10.2f} {b:10.2f} {a / b:7.2f}")
print(f"written to {out}")
PY
