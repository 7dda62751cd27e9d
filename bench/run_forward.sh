#!/usr/bin/env bash
# Forward-pass throughput of promptune (burn flex CPU backend) against PyTorch on the same
# weights, in one invocation: builds `promptune-bench` with --release, then for each case runs
# the promptune side and the PyTorch side one after the other (each case in a fresh process on
# both sides, so peak memory is per case), and writes bench/results/forward.json plus a table.
#
#   MODELS_DIR=DIR PYTHON=/path/to/python bash bench/run_forward.sh [--runs N] [--batch B] [--len T]
#        [--attn sdpa|eager] [--case NAME]... [--models-dir DIR] [--python PY] [--out FILE]
#
# DIR must hold smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf and all-minilm-l6-v2/
# (config.json + model.safetensors). PY is a python with torch, transformers (5.x) and gguf.
# Cases: smollm2-hidden, smollm2-last-logits (full vocab, last position), minilm-hidden.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models_dir=${MODELS_DIR:-}
python=${PYTHON:-}
runs=3 batch=16 len=128 attn=sdpa seed=42
out="$root/bench/results/forward.json"
cases=()
while [ $# -gt 0 ]; do
  case "$1" in
    --models-dir) models_dir=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --len) len=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --attn) attn=$2; shift 2 ;;
    --case) cases+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#cases[@]} -gt 0 ] || cases=(smollm2-hidden smollm2-last-logits minilm-hidden)

need_models="DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf and DIR/all-minilm-l6-v2/ (config.json + model.safetensors)"
if [ -z "$models_dir" ]; then
  echo "no models directory: set MODELS_DIR or pass --models-dir DIR; the benchmark needs $need_models" >&2
  exit 2
fi
for f in smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf all-minilm-l6-v2/config.json all-minilm-l6-v2/model.safetensors; do
  if [ ! -e "$models_dir/$f" ]; then
    echo "missing $models_dir/$f; the benchmark needs $need_models" >&2
    exit 2
  fi
done
if ! grep -q '"model_type"' "$models_dir/all-minilm-l6-v2/config.json"; then
  echo "$models_dir/all-minilm-l6-v2/config.json has no model_type: it must be the BERT config of the HF folder" \
       "(a flattened sentence-transformers export may have it overwritten by 1_Pooling/config.json)" >&2
  exit 2
fi
if [ -z "$python" ]; then
  echo "no PyTorch python: set PYTHON or pass --python PY (a python with torch, transformers 5.x and gguf)" >&2
  exit 2
fi
if ! "$python" -c 'import torch, transformers, gguf' 2>/dev/null; then
  echo "$python cannot import torch, transformers and gguf; point PYTHON at a venv that has them" >&2
  exit 2
fi

cd "$root"
echo "building promptune-bench (release)..." >&2
cargo build --release -q -p promptune-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench_bin="$target_dir/release/promptune-bench"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load_before=$(cat /proc/loadavg)
common=(--models-dir "$models_dir" --batch "$batch" --len "$len" --runs "$runs" --seed "$seed")
for c in "${cases[@]}"; do
  echo "== $c: promptune" >&2
  "$bench_bin" forward "${common[@]}" --case "$c" | grep '^{' >>"$tmp/rust.jsonl"
  echo "== $c: pytorch ($attn)" >&2
  "$python" "$root/bench/forward_torch.py" "${common[@]}" --attn "$attn" --case "$c" | grep '^{' >>"$tmp/torch.jsonl"
done
load_after=$(cat /proc/loadavg)

mkdir -p "$(dirname "$out")"
"$python" - "$tmp/rust.jsonl" "$tmp/torch.jsonl" "$out" "$load_before" "$load_after" <<'PY'
import json, os, platform, sys
rust_f, torch_f, out_f, load_before, load_after = sys.argv[1:]
rust = {r["case"]: r for r in map(json.loads, open(rust_f))}
torch = {r["case"]: r for r in map(json.loads, open(torch_f))}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cases = []
for name, r in rust.items():
    t = torch[name]
    cases.append({
        "case": name,
        "model": r["model"],
        "batch": r["batch"], "len": r["len"], "runs": r["runs"],
        "promptune": {k: r[k] for k in ("tokens_per_s", "best_tokens_per_s", "peak_rss_mib", "after_load_rss_mib", "output_mean_abs", "load_s", "warmup_s", "run_s", "threads")},
        "pytorch": {k: t[k] for k in ("tokens_per_s", "best_tokens_per_s", "peak_rss_mib", "after_import_rss_mib", "after_load_rss_mib", "output_mean_abs", "load_s", "warmup_s", "run_s", "threads", "attn_implementation")},
        "ratio_promptune_over_pytorch": {
            "tokens_per_s": r["tokens_per_s"] / t["tokens_per_s"],
            "peak_rss_mib": r["peak_rss_mib"] / t["peak_rss_mib"],
        },
    })
result = {
    "benchmark": "forward throughput, random ids, all-ones mask, 1 warm-up + N timed runs, fresh process per case",
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
    "promptune_backend": next(iter(rust.values()))["backend"],
    "pytorch_backend": next(iter(torch.values()))["backend"],
    "cases": cases,
}
with open(out_f, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
hdr = f"{'case':<22}{'promptune tok/s':>16}{'pytorch tok/s':>15}{'ratio':>8}{'promptune MiB':>15}{'pytorch MiB':>13}{'ratio':>8}"
print(hdr)
print("-" * len(hdr))
for c in cases:
    p, t, q = c["promptune"], c["pytorch"], c["ratio_promptune_over_pytorch"]
    print(f"{c['case']:<22}{p['tokens_per_s']:>16.0f}{t['tokens_per_s']:>15.0f}{q['tokens_per_s']:>8.2f}"
          f"{p['peak_rss_mib']:>15.0f}{t['peak_rss_mib']:>13.0f}{q['peak_rss_mib']:>8.2f}")
print(f"(batch {cases[0]['batch']} x {cases[0]['len']} tokens, {cases[0]['runs']} timed runs; pytorch attention: "
      f"{cases[0]['pytorch']['attn_implementation']}, {cases[0]['pytorch']['threads']} threads; load avg before/after: "
      f"{load_before.split()[0]} / {load_after.split()[0]})")
print(f"wrote {out_f}")
PY
