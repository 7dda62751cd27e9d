# Shared by bench/run_serve.sh and bench/run_overload.sh (sourced, not run, after `root` is
# set): the environment both need, a work folder and the servers started in it (both removed
# on exit), the release build, the 16 SmolLM2-135M SST-2 adapters both load tests serve, and
# helpers to start, measure and stop a server.

models_dir=${MODELS_DIR:?set MODELS_DIR to the folder from scripts/fetch-models.sh}
sst2=${SST2_DIR:?set SST2_DIR to a folder with GLUE SST-2 train_full.tsv and dev.tsv}
python=${PYTHON:?set PYTHON to a python with torch, transformers, peft and gguf}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
cargo build --release -q -p promptune-cli --manifest-path "$root/Cargo.toml"

gguf="$models_dir/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
bin=$root/target/release/promptune

# Trains three adapters briefly (prompt tuning, P-Tuning, prefix tuning; the first 160 training
# sentences, 10 steps: the load tests measure serving, not accuracy), exports each for PEFT, and
# copies them to 16 adapters under $work/adapters (names sst2-<method>-<i>); sets `names`,
# `list` (comma-separated names) and `peft_args` (NAME=PEFT_DIR for bench/peft_server.py).
make_adapters() {
  mkdir -p "$work/adapters" "$work/one"
  for m in prompt_tuning:sst2-smollm2.toml p_tuning:sst2-smollm2-ptuning.toml prefix_tuning:sst2-smollm2-prefix.toml; do
    local method=${m%%:*} config=${m#*:}
    "$bin" train --config "$root/examples/$config" --set "model=$gguf" \
      --set "data.train.path=$sst2/train_full.tsv" --set "data.dev.path=$sst2/dev.tsv" \
      --set data.train.limit=160 --set data.dev.limit=32 --set "output_dir=$work/train-$method" > /dev/null
    "$bin" export-peft --adapter "$work/train-$method/adapter" --out "$work/peft-$method" > /dev/null
  done
  names=()
  peft_args=()
  local methods=(prompt_tuning p_tuning prefix_tuning)
  for i in $(seq 0 15); do
    local method=${methods[$((i % 3))]}
    local name=sst2-$method-$i
    cp -r "$work/train-$method/adapter" "$work/adapters/$name"
    names+=("$name")
    peft_args+=("$name=$work/peft-$method")
  done
  cp -r "$work/train-prompt_tuning/adapter" "$work/one/sst2-prompt_tuning-0"
  list=$(IFS=,; echo "${names[*]}")
}

# start LOG CMD...: starts a server in the background, waits until it listens; prints its pid
start() {
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log" 2>/dev/null && { echo "$pid"; return; }
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
  echo "server did not start" >&2; exit 1
}
# resident memory of PID in MiB
rss() { awk '/VmRSS/ {print $2 / 1024}' "/proc/$1/status"; }
# SIGTERM, then wait until the process is gone (it is not this shell's child)
stop() { kill -TERM "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.2; done; }
