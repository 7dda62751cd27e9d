#!/usr/bin/env bash
# promptune's side of the MiniLM experiments (P-Tuning v2 issue): all-MiniLM-L6-v2 on SST-2
# (sequence classification), CoNLL-2003 (NER) and SQuAD v1.1 (extractive QA), with P-Tuning v2
# (20 deep prompt positions, no MLP) and the baselines on the same splits; the reference side
# (PEFT prefix tuning, head only, full fine-tuning) is bench/minilm_reference.py.
#
#   MODELS_DIR=DIR DATA_DIR=DIR bash bench/run_minilm.sh [RUN ...]
#
# RUN names (default: all but squad-full): sst2-ptv2 sst2-head sst2-bitfit sst2-full conll-ptv2
# conll-full squad-ptv2 squad-full; RUN:SEED runs it with train.seed=SEED and stores it as
# RUN-seedSEED. SETS="key=value ..." adds those --set overrides to every run, and TAG=name stores
# the runs as RUN-name. Needs DIR/all-minilm-l6-v2 (bash scripts/fetch-models.sh) and DATA_DIR with
# sst2-glue/, conll2003/ and squad-v1.1-dev/ (../shared/data on the project machines).
# Each run's results.json is merged into bench/results/minilm.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
data=${DATA_DIR:?set DATA_DIR to a folder with sst2-glue, conll2003 and squad-v1.1-dev}
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(sst2-ptv2 sst2-head sst2-bitfit sst2-full conll-ptv2 conll-full squad-ptv2)
out="$root/bench/results/minilm.json"
work=${WORK_DIR:-$(mktemp -d)}
cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"
bin="$root/target/release/promptune"
model=(--set "model=$models_dir/all-minilm-l6-v2")
sst2=("${model[@]}" --set "data.train.path=$data/sst2-glue/train_full.tsv" --set "data.dev.path=$data/sst2-glue/dev.tsv")
conll=("${model[@]}" --set "data.train.path=$data/conll2003/train.txt" --set "data.dev.path=$data/conll2003/test.txt")
squad=("${model[@]}" --set "data.train.path=$data/squad-v1.1-dev/dev-v1.1.json" --set "data.dev.path=$data/squad-v1.1-dev/dev-v1.1.json")
for spec in "${runs[@]}"; do
  run=${spec%%:*}
  seed_args=()
  if [ "$spec" != "$run" ]; then seed_args=(--set "train.seed=${spec#*:}"); fi
  case "$run" in
    sst2-ptv2) args=(--config "$root/examples/sst2-minilm-ptv2.toml" "${sst2[@]}") ;;
    sst2-head) args=(--config "$root/examples/sst2-minilm-ptv2.toml" "${sst2[@]}" --set method.kind=none) ;;
    sst2-bitfit) args=(--config "$root/examples/sst2-minilm-ptv2.toml" "${sst2[@]}" --set method.kind=bitfit --set train.lr=1e-3) ;;
    sst2-full) args=(--config "$root/examples/sst2-minilm-ptv2.toml" "${sst2[@]}" --set method.kind=full --set train.lr=2e-5) ;;
    conll-ptv2) args=(--config "$root/examples/conll-minilm-ptv2.toml" "${conll[@]}") ;;
    conll-full) args=(--config "$root/examples/conll-minilm-ptv2.toml" "${conll[@]}" --set method.kind=full --set train.lr=5e-5) ;;
    squad-ptv2) args=(--config "$root/examples/squad-minilm-ptv2.toml" "${squad[@]}") ;;
    squad-full) args=(--config "$root/examples/squad-minilm-ptv2.toml" "${squad[@]}" --set method.kind=full --set train.lr=5e-5) ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  args+=("${seed_args[@]}")
  for kv in ${SETS:-}; do args+=(--set "$kv"); done
  if [ "$spec" != "$run" ]; then run="$run-seed${spec#*:}"; fi
  if [ -n "${TAG:-}" ]; then run="$run-$TAG"; fi
  echo "== $run ($(cat /proc/loadavg))" >&2
  "$bin" train "${args[@]}" --set "output_dir=$work/$run" > "$work/$run.json"
  python3 - "$out" "$run" "$work/$run.json" "$(cat /proc/loadavg)" "${args[*]}" <<'PY'
import json, os, sys
out, run, result, load, args = sys.argv[1:]
merged = json.load(open(out)) if os.path.exists(out) else {}
r = json.load(open(result))
r["loadavg_after"] = load
r["args"] = args
merged[run] = r
json.dump(merged, open(out, "w"), indent=2, sort_keys=True)
PY
done
echo "$out"
