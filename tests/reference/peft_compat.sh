#!/usr/bin/env bash
# PEFT compatibility of PROMPT_TUNING, P_TUNING and PREFIX_TUNING adapters (promptune -> PEFT and
# PEFT -> promptune, same logits within 1e-4) on the tiny Llama fixture; see
# peft_prompt_tuning_compat.py, peft_p_tuning_compat.py and peft_prefix_compat.py.
#
#   bash tests/reference/peft_compat.sh [PYTHON]
#
# PYTHON defaults to $PY, else the reference venv (../shared/reference/setup.sh, else
# ~/.cache/ref-venv/bin/python). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:-${PY:-}}
if [ -z "$py" ]; then
  if [ -f ../shared/reference/setup.sh ]; then
    py=$(bash ../shared/reference/setup.sh | tail -n 1)
  else
    py=$HOME/.cache/ref-venv/bin/python
  fi
fi
cargo build --release -p promptune-cli
"$py" tests/reference/peft_prompt_tuning_compat.py "${CARGO_TARGET_DIR:-target}/release/promptune"
"$py" tests/reference/peft_p_tuning_compat.py "${CARGO_TARGET_DIR:-target}/release/promptune"
"$py" tests/reference/peft_prefix_compat.py "${CARGO_TARGET_DIR:-target}/release/promptune"
