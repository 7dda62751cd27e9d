#!/usr/bin/env bash
# Prompt Tuning (or P-Tuning / Prefix-Tuning) on SST-2 with SmolLM2-135M: promptune and HF PEFT
# side by side, in one run.
#
#   MODELS_DIR=DIR SST2_DIR=DIR PYTHON=/path/to/python bash bench/run_sst2.sh \
#       [--method prompt_tuning|p_tuning|prefix|prefix_random|prefix_mlp] [--out FILE]
#
# --method p_tuning: examples/sst2-smollm2-ptuning.toml (MLP prompt encoder, lr 1e-2) against PEFT
# P_TUNING; prefix: examples/sst2-smollm2-prefix.toml (direct prefix from the word activations
# of a task description, lr 1e-2) against PEFT PREFIX_TUNING started from the same values (our
# start, trained 0 steps and exported with export-peft, loaded by peft_sst2.py --init-from; both
# sides score it before training); prefix_random: the same from PEFT's N(0, 1) start on both
# sides; prefix_mlp: the MLP reparametrisation (hidden 512, N(0, 1) start, lr 5e-5) against PEFT
# with prefix_projection. These skip the zero-shot scoring (the template is the prompt-tuning
# one) and write bench/results/sst2_METHOD.json.
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
out=""
method=prompt_tuning
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --method) method=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
sst2=${SST2_DIR:?set SST2_DIR to a folder with GLUE SST-2 train_full.tsv and dev.tsv}
python=${PYTHON:?set PYTHON to a python with torch, transformers, peft and gguf}
gguf="$models_dir/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$method" in
  prompt_tuning) config=sst2-smollm2.toml; ours=(); peft_args=(); out=${out:-$root/bench/results/sst2.json} ;;
  p_tuning) config=sst2-smollm2-ptuning.toml; ours=(); peft_args=(--method p_tuning --lr 1e-2 --skip-zero-shot) ;;
  prefix) config=sst2-smollm2-prefix.toml; ours=()
    peft_args=(--method prefix_tuning --lr 1e-2 --skip-zero-shot --dev-before --init-from "$work/start-peft") ;;
  prefix_random) config=sst2-smollm2-prefix.toml; ours=(--set 'method.init={ kind = "random" }')
    peft_args=(--method prefix_tuning --lr 1e-2 --skip-zero-shot --dev-before) ;;
  prefix_mlp)
    config=sst2-smollm2-prefix.toml
    ours=(--set method.prefix_projection=true --set method.encoder_hidden_size=512
          --set 'method.init={ kind = "random" }' --set train.lr=5e-5)
    peft_args=(--method prefix_tuning --prefix-projection --encoder-hidden-size 512 --lr 5e-5 --skip-zero-shot) ;;
  *) echo "unknown method $method (prompt_tuning, p_tuning, prefix, prefix_random or prefix_mlp)" >&2; exit 2 ;;
esac
out=${out:-$root/bench/results/sst2_$method.json}
for f in "$gguf" "$sst2/train_full.tsv" "$sst2/dev.tsv"; do
  [ -f "$f" ] || { echo "missing $f" >&2; exit 2; }
done

cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"
bin="$root/target/release/promptune"
sets=(--set "model=$gguf" --set "data.train.path=$sst2/train_full.tsv"
      --set "data.dev.path=$sst2/dev.tsv" --set "output_dir=$work/run")
load_before=$(cat /proc/loadavg)

if [ "$method" = prefix ]; then
  echo "== promptune: the starting prefix, exported for PEFT" >&2
  "$bin" train --config "$root/examples/$config" "${sets[@]}" --set train.max_steps=0 \
      --set data.dev.limit=1 --set "output_dir=$work/start" > /dev/null
  "$bin" export-peft --adapter "$work/start/adapter" --out "$work/start-peft" >&2
fi
if [ "$method" = prompt_tuning ]; then
  echo "== promptune zero-shot" >&2
  "$bin" zero-shot --config "$root/examples/$config" "${sets[@]}" > "$work/zero.json"
fi
echo "== promptune train ($method)" >&2
"$bin" train --config "$root/examples/$config" "${sets[@]}" "${ours[@]}" > "$work/train.json"
echo "== PEFT ($method)" >&2
"$python" "$root/tests/reference/peft_sst2.py" "$models_dir" "$sst2" "$work/peft.json" --threads 2 "${peft_args[@]}" > /dev/null
load_after=$(cat /proc/loadavg)

"$python" - "$work" "$out" "$load_before" "$load_after" "$method" "$config ${ours[*]}" "${peft_args[*]}" <<'PY'
import json, os, platform, sys
work, out, before, after, method, ours_args, peft_args = sys.argv[1:8]
read = lambda name: json.load(open(os.path.join(work, name)))
ours, peft = read("run/results.json"), read("peft.json")
if method == "prompt_tuning":
    zero = read("zero.json")
else:  # not scored: the same template's zero-shot figures are in sst2.json
    zero = {"accuracy": None, "examples_per_second": None}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
result = {
    "setup": "SmolLM2-135M-Instruct Q4_1 GGUF, SST-2, 1,000 train rows, 1 epoch, batch 16, dev 872; "
             + ("20 soft tokens (text init), lr 3e-2" if method == "prompt_tuning"
                else f"promptune: {ours_args}; PEFT: tests/reference/peft_sst2.py {peft_args}"),
    "method": method,
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_before": before, "loadavg_after": after},
    "promptune": {
        "zero_shot_dev_accuracy": zero["accuracy"],
        "zero_shot_examples_per_second": zero["examples_per_second"],
        "dev_accuracy_before_training": ours.get("initial_dev_accuracy"),
        f"{method}_dev_accuracy": ours["final_dev_accuracy"],
        "seconds_per_step": ours["seconds_per_step"],
        "steps": ours["steps"],
        "dev_examples_per_second": ours["dev_examples_per_second"],
        "peak_rss_mib": ours["peak_rss_mib"],
        "trainable_parameters": ours["trainable_parameters"],
    },
    "peft": peft,
}
p = result["promptune"]
peft_trained = peft.get("trained_dev_accuracy", peft.get("prompt_tuning_dev_accuracy"))
ratio = lambda a, b: a / b if a is not None and b else None
points = lambda a, b: 100 * (a - b) if a is not None and b is not None else None
result["ratio_promptune_over_peft"] = {
    "seconds_per_step": p["seconds_per_step"] / peft["seconds_per_step"],
    "peak_rss": p["peak_rss_mib"] / peft["peak_rss_mib"],
    "dev_examples_per_second": p["dev_examples_per_second"] / peft["dev_examples_per_second"],
    "zero_shot_examples_per_second": ratio(p["zero_shot_examples_per_second"], peft["zero_shot_examples_per_second"]),
}
result["accuracy_points_promptune_minus_peft"] = {
    "zero_shot": points(p["zero_shot_dev_accuracy"], peft["zero_shot_dev_accuracy"]),
    method: points(p[f"{method}_dev_accuracy"], peft_trained),
}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=2)
pct = lambda x: None if x is None else 100 * x
rows = [("zero-shot dev accuracy", pct(p["zero_shot_dev_accuracy"]), pct(peft["zero_shot_dev_accuracy"])),
        (f"{method} dev accuracy", pct(p[f"{method}_dev_accuracy"]), pct(peft_trained)),
        ("train s/step", p["seconds_per_step"], peft["seconds_per_step"]),
        ("peak RSS MiB", p["peak_rss_mib"], peft["peak_rss_mib"]),
        ("dev scoring ex/s (trained)", p["dev_examples_per_second"], peft["dev_examples_per_second"]),
        ("dev scoring ex/s (zero-shot)", p["zero_shot_examples_per_second"], peft["zero_shot_examples_per_second"])]
if method != "prompt_tuning":
    rows.insert(0, ("dev accuracy before training", pct(p["dev_accuracy_before_training"]),
                    pct(peft.get("dev_accuracy_before_training"))))
print(f"{'':30} {'promptune':>10} {'PEFT':>10} {'ratio':>7}")
for name, a, b in rows:
    if a is not None and b:
        print(f"{name:30} {a:10.2f} {b:10.2f} {a / b:7.2f}")
print(f"written to {out}")
PY
