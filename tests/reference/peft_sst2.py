"""PEFT side of the SST-2 prompt-tuning comparison (same setup as examples/sst2-smollm2.toml).

    python tests/reference/peft_sst2.py MODELS_DIR SST2_DIR OUT.json

SmolLM2-135M-Instruct (the GGUF, dequantized to f32 by transformers), template
"Review: {sentence}\\nSentiment:" read at the next token, verbalizer " negative"/" positive"
(first token), 20 virtual tokens initialised from the text "Classify the sentiment of the
review as positive or negative", AdamW lr 3e-2, the first 1,000 training examples, 1 epoch,
batch 16, left padding. Reports zero-shot and trained dev accuracy, train step time, peak RSS
and dev scoring throughput.
"""
import json
import os
import random
import resource
import sys
import time

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

models, sst2, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
folder = os.path.join(models, "smollm2-135m-instruct")
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
torch.manual_seed(42)
random.seed(42)
torch.set_num_threads(os.cpu_count())


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


train, dev = read(os.path.join(sst2, "train_full.tsv"), 1000), read(os.path.join(sst2, "dev.tsv"))
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


zero_acc, zero_rate = evaluate(model)
cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20, prompt_tuning_init=PromptTuningInit.TEXT,
                         prompt_tuning_init_text="Classify the sentiment of the review as positive or negative",
                         tokenizer_name_or_path=folder, tokenizer_kwargs={"gguf_file": gguf})
pm = get_peft_model(model, cfg)
opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=3e-2)
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
print(json.dumps(result, indent=2))
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
