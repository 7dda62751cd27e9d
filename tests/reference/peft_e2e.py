"""PEFT side of the E2E table-to-text comparison (same setup as examples/e2e-smollm2-prefix.toml).

    python tests/reference/peft_e2e.py MODELS_DIR E2E_DIR TEST_JSONL OUT_DIR
        [--train-mrs N] [--init-from PEFT_DIR] [--lr LR] [--num-beams B] [--max-new-tokens N]

SmolLM2-135M-Instruct (the GGUF, dequantized to f32 by transformers) with PEFT PREFIX_TUNING,
10 virtual tokens, direct (no projection), started from the prompt_embeddings of --init-from
(promptune's start from word activations, exported with export-peft) or PEFT's N(0, 1).
Training pairs: every reference of the first N meaning representations of trainset.csv (in
file order), linearised as promptune's `format = "e2e"` reader does ("name : The Mill | Type :
pub | ..."); input = source ids + "\\n" ids + target ids (at most 63) + eos, loss on the target
and eos only (labels -100 elsewhere), right padding, batch 8, 1 epoch in a shuffled order (seed
42), AdamW lr 1e-2 without weight decay, linear decay to 0, gradient clipping 1.0.

Decoding: the sources of TEST_JSONL (what `promptune predict` wrote for the same test items, so
both sides decode identical inputs), one at a time, `model.generate` with num_beams 5,
max_new_tokens 64, the model's eos, length_penalty 1.0, early_stopping False. Writes
OUT_DIR/hypotheses.txt (one line per source) and OUT_DIR/peft.json (step time, generation
tokens/s, peak RSS, trainable parameters); scores come from `promptune metrics`, the same
scorer as promptune's side.
"""
import argparse
import csv
import json
import os
import random
import re
import resource
import time

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("models")
ap.add_argument("e2e")
ap.add_argument("test_jsonl")
ap.add_argument("out")
ap.add_argument("--train-mrs", type=int, default=60)
ap.add_argument("--init-from")
ap.add_argument("--lr", type=float, default=1e-2)
ap.add_argument("--num-beams", type=int, default=5)
ap.add_argument("--max-new-tokens", type=int, default=64)
ap.add_argument("--threads", type=int, default=os.cpu_count())
args = ap.parse_args()
torch.manual_seed(42)
random.seed(42)
torch.set_num_threads(args.threads)
folder = os.path.join(args.models, "smollm2-135m-instruct")
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAMES = {"familyFriendly": "family friendly", "priceRange": "price", "eatType": "Type"}


def linearise(mr):
    parts = []
    for key, value in re.findall(r"\s*,?\s*([^\[]+)\[([^\]]*)\]", mr):
        key = key.strip()
        parts.append(f"{NAMES.get(key, key)} : {value.strip()}")
    return " | ".join(parts)


groups = {}
with open(os.path.join(args.e2e, "trainset.csv"), newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        source = linearise(row["mr"])
        if source not in groups:
            if len(groups) == args.train_mrs:
                continue
            groups[source] = []
        groups[source].append(row["ref"])
pairs = [(s, r) for s, refs in groups.items() for r in refs]
tests = [json.loads(l) for l in open(args.test_jsonl)]

tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
eos = model.config.eos_token_id
eos = eos[0] if isinstance(eos, list) else eos
pad = tok.pad_token_id if tok.pad_token_id is not None else eos
sep = tok("\n", add_special_tokens=False).input_ids
cfg = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=10, prefix_projection=False)
pm = get_peft_model(model, cfg)
if args.init_from:
    from safetensors.torch import load_file
    start = load_file(os.path.join(args.init_from, "adapter_model.safetensors"))["prompt_embeddings"]
    with torch.no_grad():
        pm.prompt_encoder["default"].embedding.weight.copy_(start)
trainable = sum(p.numel() for p in pm.parameters() if p.requires_grad)


def encode(source, target):
    src = tok(source, add_special_tokens=False).input_ids + sep
    tgt = tok(target, add_special_tokens=False).input_ids[:63] + [eos]
    return src + tgt, [-100] * len(src) + tgt


order = list(range(len(pairs)))
random.shuffle(order)
steps = (len(order) + 7) // 8
params = [p for p in pm.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
pm.train()
times, losses = [], []
for i in range(0, len(order), 8):
    rows = [encode(*pairs[j]) for j in order[i:i + 8]]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
    start = time.time()
    loss = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    times.append(time.time() - start)
    losses.append(loss.item())

pm.eval()
hyps, new_tokens, started = [], 0, time.time()
with torch.inference_mode():
    for t in tests:
        ids = tok(t["source"]["source"], add_special_tokens=False).input_ids + sep
        x = torch.tensor([ids])
        out = pm.generate(input_ids=x, attention_mask=torch.ones_like(x), num_beams=args.num_beams,
                          max_new_tokens=args.max_new_tokens, eos_token_id=eos, pad_token_id=pad,
                          do_sample=False, length_penalty=1.0, early_stopping=False)
        new = out[0, len(ids):].tolist()
        new_tokens += len(new)
        hyps.append(tok.decode(new, skip_special_tokens=True).strip().replace("\n", " "))
gen_secs = time.time() - started
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "hypotheses.txt"), "w") as f:
    f.write("\n".join(hyps) + "\n")
result = {
    "train_mrs": len(groups), "train_pairs": len(pairs), "test_sources": len(tests),
    "trainable_parameters": trainable, "steps": len(times),
    "seconds_per_step": sum(times) / len(times), "first_loss": losses[0], "last_loss": losses[-1],
    "generated_tokens": new_tokens, "generation_seconds": gen_secs,
    "generation_tokens_per_second": new_tokens / gen_secs,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "torch_threads": torch.get_num_threads(), "init_from": args.init_from, "lr": args.lr,
    "num_beams": args.num_beams, "eos_token_id": eos,
}
print(json.dumps(result, indent=2))
json.dump(result, open(os.path.join(args.out, "peft.json"), "w"), indent=2)
