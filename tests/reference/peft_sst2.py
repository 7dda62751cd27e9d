"""PEFT side of the SST-2 prompt-tuning comparison (same setup as examples/sst2-smollm2.toml).

    python tests/reference/peft_sst2.py MODELS_DIR SST2_DIR OUT.json [--method M] [--lr LR] [...]

SmolLM2-135M-Instruct (the GGUF, dequantized to f32 by transformers), template
"Review: {sentence}\\nSentiment:" read at the next token, verbalizer " negative"/" positive"
(first token), 20 virtual tokens initialised from the text "Classify the sentiment of the
review as positive or negative", AdamW lr 3e-2, the first 1,000 training examples, 1 epoch,
batch 16, left padding. Reports zero-shot and trained dev accuracy, train step time, peak RSS
and dev scoring throughput.

--method picks the PEFT method (the default, prompt_tuning, is the run above, output unchanged):
  prefix_tuning  PrefixTuningConfig, 20 virtual tokens, PEFT's random N(0,1) init, or with
                 --init-from DIR the prompt_embeddings of a PEFT adapter folder (promptune's start
                 from word activations: bench/run_sst2.sh --method prefix); with
                 --prefix-projection the MLP reparameterisation (--encoder-hidden-size, default 512)
  p_tuning       PromptEncoderConfig, 20 virtual tokens, MLP encoder, --encoder-hidden-size
                 (default: the model hidden size, 576)
Both read the label logits at the last position, as prompt tuning does: with left padding the
last position is the last real token; prefix tuning passes the prefix as past_key_values (the
sequence itself is not lengthened) and p-tuning prepends the virtual tokens, so position -1 is
the last prompt token either way; PEFT widens the attention mask by the 20 virtual positions.
--lr sets the AdamW learning rate (default 3e-2), --limit the training rows (default 1000),
--dev-limit the dev rows (default all 872), --threads the torch threads (default: all cores),
--skip-zero-shot skips scoring the frozen model, --dev-before also scores the untrained PEFT
model on dev. For methods other than prompt_tuning the output also names the method, lr and
PEFT config and counts the trainable parameters.
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import torch
from peft import (PrefixTuningConfig, PromptEncoderConfig, PromptEncoderReparameterizationType, PromptTuningConfig,
                  PromptTuningInit, TaskType, get_peft_model)
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("models")
ap.add_argument("sst2")
ap.add_argument("out")
ap.add_argument("--method", choices=["prompt_tuning", "prefix_tuning", "p_tuning"], default="prompt_tuning")
ap.add_argument("--lr", type=float, default=3e-2)
ap.add_argument("--prefix-projection", action="store_true", help="prefix_tuning: MLP reparameterisation")
ap.add_argument("--encoder-hidden-size", type=int, default=None,
                help="prefix_tuning with --prefix-projection (default 512) or p_tuning (default: model hidden size)")
ap.add_argument("--limit", type=int, default=1000, help="training rows (first N of train_full.tsv)")
ap.add_argument("--dev-limit", type=int, default=None, help="dev rows (default: all 872; for smoke tests)")
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--skip-zero-shot", action="store_true")
ap.add_argument("--init-from", help="prefix_tuning without projection: start from the prompt_embeddings of this PEFT "
                                    "adapter folder (e.g. promptune's word-activation start, trained 0 steps and exported)")
ap.add_argument("--dev-before", action="store_true", help="also score the untrained PEFT model on dev")
args = ap.parse_args()
models, sst2, out_path = args.models, args.sst2, args.out
folder = os.path.join(models, "smollm2-135m-instruct")
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
torch.manual_seed(42)
random.seed(42)
torch.set_num_threads(args.threads)


def read(path, limit=None):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            s, l = line.rstrip("\n").split("\t")
            rows.append((s.strip(), int(l)))
            if limit and len(rows) >= limit:
                break
    return rows


train, dev = read(os.path.join(sst2, "train_full.tsv"), args.limit), read(os.path.join(sst2, "dev.tsv"), args.dev_limit)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
tok.padding_side = "left"
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
rows = [tok(" negative", add_special_tokens=False).input_ids[0], tok(" positive", add_special_tokens=False).input_ids[0]]


def prompts(batch):
    return [f"Review: {s}\nSentiment:" for s, _ in batch]


def label_logits(m, batch):
    enc = tok(prompts(batch), return_tensors="pt", padding=True)
    logits = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, -1, :]
    return logits[:, rows]


def evaluate(m):
    m.eval()
    correct, start = 0, time.time()
    with torch.inference_mode():
        for i in range(0, len(dev), 32):
            batch = dev[i:i + 32]
            pred = label_logits(m, batch).argmax(-1)
            correct += sum(int(p) == l for p, (_, l) in zip(pred.tolist(), batch))
    return correct / len(dev), len(dev) / (time.time() - start)


zero_acc, zero_rate = (None, None) if args.skip_zero_shot else evaluate(model)
if args.method == "prompt_tuning":
    cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20, prompt_tuning_init=PromptTuningInit.TEXT,
                             prompt_tuning_init_text="Classify the sentiment of the review as positive or negative",
                             tokenizer_name_or_path=folder, tokenizer_kwargs={"gguf_file": gguf})
elif args.method == "prefix_tuning":
    cfg = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20, prefix_projection=args.prefix_projection,
                             encoder_hidden_size=args.encoder_hidden_size or 512)
else:
    cfg = PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20,
                              encoder_reparameterization_type=PromptEncoderReparameterizationType.MLP,
                              encoder_hidden_size=args.encoder_hidden_size or model.config.hidden_size)
pm = get_peft_model(model, cfg)
if args.init_from:
    if args.method != "prefix_tuning" or args.prefix_projection:
        sys.exit("--init-from needs --method prefix_tuning without --prefix-projection")
    from safetensors.torch import load_file
    start = load_file(os.path.join(args.init_from, "adapter_model.safetensors"))["prompt_embeddings"]
    with torch.no_grad():
        pm.prompt_encoder["default"].embedding.weight.copy_(start)
trainable = sum(p.numel() for p in pm.parameters() if p.requires_grad)
before_acc, before_rate = evaluate(pm) if args.dev_before else (None, None)
opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=args.lr)
order = list(range(len(train)))
random.shuffle(order)
pm.train()
times = []
for i in range(0, len(order), 16):
    batch = [train[j] for j in order[i:i + 16]]
    start = time.time()
    logits = label_logits(pm, batch)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([l for _, l in batch]))
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad()
    times.append(time.time() - start)
trained_acc, rate = evaluate(pm)
result = {
    "zero_shot_dev_accuracy": zero_acc, "prompt_tuning_dev_accuracy": trained_acc,
    "seconds_per_step": sum(times) / len(times), "steps": len(times),
    "dev_examples_per_second": rate, "zero_shot_examples_per_second": zero_rate,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "torch_threads": torch.get_num_threads(),
}
if args.method != "prompt_tuning":
    del result["prompt_tuning_dev_accuracy"]
    keys = ("peft_type", "num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads",
            "num_transformer_submodules", "prefix_projection", "encoder_hidden_size",
            "encoder_reparameterization_type", "encoder_num_layers", "encoder_dropout")
    shown = {k: getattr(v, "value", v) for k, v in cfg.to_dict().items() if k in keys}
    result = {"method": args.method, "lr": args.lr, "init_from": args.init_from, "train_rows": len(train), "dev_rows": len(dev),
              "trainable_parameters": trainable, "peft_config": shown,
              "dev_accuracy_before_training": before_acc, "dev_examples_per_second_before_training": before_rate,
              "trained_dev_accuracy": trained_acc, **result}
elif args.dev_before or args.limit != 1000 or args.dev_limit or args.lr != 3e-2:
    result.update({"dev_accuracy_before_training": before_acc, "lr": args.lr, "train_rows": len(train),
                   "dev_rows": len(dev), "trainable_parameters": trainable})
print(json.dumps(result, indent=2))
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
