#!/usr/bin/env python3
"""PyTorch side of the forward-throughput benchmark (see bench/run_forward.sh).

Same cases, weights, ids and timing protocol as `promptune-bench forward`: a batch of
random token ids (splitmix64 from --seed, all-ones mask), one warm-up run, then N timed runs
under torch.inference_mode(), with torch.set_num_threads(<usable cores>). Each case runs in
a fresh child process (this script re-invoked with --child) so that its peak resident memory
(resource.getrusage ru_maxrss: imports + load + forward) is measured on its own. Prints one
JSON line per case.

Needs torch, transformers (5.x) and gguf (for the SmolLM2 GGUF).
"""

import argparse
import json
import os
import subprocess
import sys
import time

SMOLLM2_DIR = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_DIR = "all-minilm-l6-v2"
CASES = ["smollm2-hidden", "smollm2-last-logits", "minilm-hidden"]
MODEL_NAMES = {
    "smollm2-hidden": "SmolLM2-135M-Instruct",
    "smollm2-last-logits": "SmolLM2-135M-Instruct",
    "minilm-hidden": "all-MiniLM-L6-v2",
}


def splitmix64(seed, n):
    mask = (1 << 64) - 1
    state = seed & mask
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def case_path(case, models_dir):
    if case.startswith("smollm2"):
        return os.path.join(models_dir, SMOLLM2_DIR, SMOLLM2_GGUF)
    return os.path.join(models_dir, MINILM_DIR)


def rss_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def run_case(case, args):
    import resource

    baseline = rss_mib("VmRSS")  # before torch is imported
    import torch
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    after_import = rss_mib("VmRSS")
    path = case_path(case, args.models_dir)
    t0 = time.perf_counter()
    if case.startswith("smollm2"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(path),
            gguf_file=os.path.basename(path),
            dtype=torch.float32,
            attn_implementation=args.attn,
        )
    else:
        model = AutoModel.from_pretrained(
            path, dtype=torch.float32, attn_implementation=args.attn, add_pooling_layer=False
        )
    model.eval()
    load_s = time.perf_counter() - t0
    after_load = rss_mib("VmRSS")

    b, t = args.batch, args.len
    vocab = model.config.vocab_size
    ids = torch.tensor([z % vocab for z in splitmix64(args.seed, b * t)], dtype=torch.long).reshape(b, t)
    mask = torch.ones(b, t, dtype=torch.long)

    if case == "smollm2-hidden":
        # The base model: embeddings, layers, final norm; no LM head.
        def step():
            return model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    elif case == "smollm2-last-logits":
        # The full vocabulary at the last position only (logits_to_keep=1).
        def step():
            return model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1).logits
    else:
        def step():
            return model(input_ids=ids, attention_mask=mask).last_hidden_state

    with torch.inference_mode():
        t0 = time.perf_counter()
        out = step()
        warmup_s = time.perf_counter() - t0
        run_s = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            step()
            run_s.append(time.perf_counter() - t0)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    total = sum(run_s)
    return {
        "side": "pytorch",
        "case": case,
        "model": MODEL_NAMES[case],
        "path": path,
        "backend": f"torch {torch.__version__} CPU, transformers {transformers.__version__}",
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "batch": b,
        "len": t,
        "runs": args.runs,
        "output_elements": out.numel(),
        "output_mean_abs": out.abs().double().mean().item(),
        "load_s": load_s,
        "warmup_s": warmup_s,
        "run_s": run_s,
        "tokens_per_s": b * t * args.runs / total,
        "best_tokens_per_s": b * t / min(run_s),
        "baseline_rss_mib": baseline,
        "after_import_rss_mib": after_import,
        "after_load_rss_mib": after_load,
        "peak_rss_mib": peak,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", default=os.environ.get("MODELS_DIR"))
    p.add_argument("--case", action="append", choices=CASES, help="repeatable; default: all")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--len", type=int, default=128)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="transformers attention implementation")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    if not args.models_dir:
        sys.exit(
            "no models directory: pass --models-dir DIR or set MODELS_DIR. It must hold "
            f"{SMOLLM2_DIR}/{SMOLLM2_GGUF} and {MINILM_DIR}/ (config.json + model.safetensors)"
        )
    cases = args.case or CASES
    missing = [case_path(c, args.models_dir) for c in cases if not os.path.exists(case_path(c, args.models_dir))]
    if missing:
        sys.exit(f"missing model files under {args.models_dir}: {', '.join(missing)}")
    if args.batch < 1 or args.len < 1 or args.runs < 1:
        sys.exit("--batch, --len and --runs must be at least 1")

    if args.child:
        (case,) = cases
        print(json.dumps(run_case(case, args)), flush=True)
        return
    for case in cases:
        cmd = [
            sys.executable, os.path.abspath(__file__), "--child", "--models-dir", args.models_dir,
            "--case", case, "--batch", str(args.batch), "--len", str(args.len),
            "--runs", str(args.runs), "--seed", str(args.seed), "--attn", args.attn,
        ]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            sys.exit(f"case {case} failed (exit {out.returncode})")
        sys.stdout.write(out.stdout)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
