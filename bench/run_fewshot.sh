#!/usr/bin/env bash
# Few-shot BitFit and null prompts (Logan et al.) on SST-2: 16 examples per label, 5 seeds
# (the seed draws the examples and the initialisation), each adapter scored on the 872 dev
# rows; mean ± std per setting, and the untrained (zero-shot) accuracy of each template.
#
#   MODELS_DIR=DIR SST2_DIR=DIR bash bench/run_fewshot.sh [SETTING ...]
#
# SETTINGs (default: all): smollm2-bitfit (manual template "Review: ... Sentiment:"),
# smollm2-null-bitfit (template "{text_a}{mask}"), minilm-bitfit (head on the pooled output).
# Writes bench/results/fewshot.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
sst2=${SST2_DIR:?set SST2_DIR to a folder with GLUE SST-2 train_full.tsv and dev.tsv}
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(smollm2-bitfit smollm2-null-bitfit minilm-bitfit)
seeds=${SEEDS:-"1 2 3 4 5"}
out="$root/bench/results/fewshot.json"
work=${WORK_DIR:-$(mktemp -d)}
cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"
bin="$root/target/release/promptune"
smol="$models_dir/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
dev=(--data "$sst2/dev.tsv" --column text_a=sentence --label-column label --label-map 0=negative --label-map 1=positive)
for setting in "${settings[@]}"; do
  case "$setting" in
    smollm2-bitfit) args=(--config "$root/examples/sst2-smollm2-bitfit-16shot.toml" --set "model=$smol") ;;
    smollm2-null-bitfit) args=(--config "$root/examples/sst2-smollm2-bitfit-16shot.toml" --set "model=$smol" --set 'template={text_a}{mask}') ;;
    minilm-bitfit) args=(--config "$root/examples/sst2-minilm-bitfit-16shot.toml" --set "model=$models_dir/all-minilm-l6-v2") ;;
    *) echo "unknown setting $setting" >&2; exit 2 ;;
  esac
  args+=(--set "data.train.path=$sst2/train_full.tsv")
  zero="null"
  if [ "$setting" != minilm-bitfit ]; then
    echo "== $setting zero-shot" >&2
    "$bin" zero-shot "${args[@]}" --set "data.dev.path=$sst2/dev.tsv" --set "data.dev.columns={text_a=\"sentence\"}" \
      --set "data.dev.label_column=label" --set 'data.dev.label_map={"0"="negative","1"="positive"}' > "$work/$setting-zero.json"
    zero="$work/$setting-zero.json"
  fi
  for seed in $seeds; do
    echo "== $setting seed $seed ($(cat /proc/loadavg))" >&2
    run="$work/$setting-$seed"
    "$bin" train "${args[@]}" --set "train.seed=$seed" --set "output_dir=$run" > "$run.train.json"
    "$bin" eval --adapter "$run/adapter" "${dev[@]}" > "$run.eval.json"
  done
  python3 - "$out" "$setting" "$work" "$zero" "${args[*]}" $seeds <<'PY'
import json, os, statistics, sys
out, setting, work, zero, args, *seeds = sys.argv[1:]
merged = json.load(open(out)) if os.path.exists(out) else {}
accs, runs = [], {}
for s in seeds:
    train = json.load(open(f"{work}/{setting}-{s}.train.json"))
    ev = json.load(open(f"{work}/{setting}-{s}.eval.json"))
    accs.append(100 * ev["accuracy"])
    runs[s] = {"dev_accuracy": ev["accuracy"], "dev_macro_f1": ev["macro_f1"], "steps": train["steps"],
               "seconds_per_step": train["seconds_per_step"], "trainable_parameters": train["trainable_parameters"],
               "peak_rss_mib": train["peak_rss_mib"]}
entry = {"args": args, "seeds": runs, "dev_accuracy_mean": statistics.mean(accs),
         "dev_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0}
if zero != "null":
    entry["zero_shot_dev_accuracy"] = json.load(open(zero))["accuracy"]
merged[setting] = entry
json.dump(merged, open(out, "w"), indent=2, sort_keys=True)
print(f"{setting}: {entry['dev_accuracy_mean']:.2f} ± {entry['dev_accuracy_std']:.2f}", file=sys.stderr)
PY
done
echo "$out"
