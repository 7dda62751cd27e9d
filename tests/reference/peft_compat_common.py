"""What the PEFT compatibility scripts share: the tiny Llama model folder with the word-level
tokenizer of crates/promptune/tests/common/tiny.rs, its sentiment data, running the promptune
binary, transformers' label logits, and the comparisons (logits within TOL; adapter files with
PEFT's keys, value types, tensor names, shapes, dtypes and metadata).
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from peft import PeftModel
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(ROOT, "crates", "promptune", "tests", "fixtures", "tiny-llama")
TOL = 1e-4
LABELS = ["negative", "positive"]
# the vocabulary of crates/promptune/tests/common/tiny.rs, in id order
WORDS = ["<pad>", "<s>", "</s>", "<unk>", "review:", "sentiment:", "positive", "negative", "good",
         "great", "fine", "nice", "bad", "awful", "poor", "dull", "movie", "film", "plot", "acting",
         "the", "a", "was", "is"]


def make_model(folder):
    os.makedirs(folder)
    for f in ["config.json", "model.safetensors"]:
        shutil.copy(os.path.join(FIXTURE, f), folder)
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [], "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(WORDS)}, "unk_token": "<unk>"},
    }
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)


def examples(rows, offset):
    """The data of crates/promptune/tests/common/tiny.rs `sentiment_jsonl`: label i % 2, adjective by label."""
    pos, neg = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "dull"]
    nouns = ["movie", "film", "plot", "acting"]
    out = []
    for i in range(offset, offset + rows):
        label = i % 2
        adj = (pos if label else neg)[i // 2 % 4]
        out.append((f"the {nouns[i // 8 % 4]} was {adj}", label))
    return out


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for text, label in rows:
            f.write(json.dumps({"text": text, "label": label}) + "\n")


def run(binary, *args, cwd):
    out = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"FAIL: promptune {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
    return out.stdout


def our_logits(binary, adapter, data, out, cwd):
    run(binary, "predict", "--adapter", adapter, "--data", data, "--output", out, "--batch-size", "5", cwd=cwd)
    with open(os.path.join(cwd, out)) as f:
        rows = [json.loads(line) for line in f]
    return torch.tensor([[r["logits"][l] for l in LABELS] for r in rows], dtype=torch.float64)


class Reference:
    """The tiny Llama in transformers with the shared tokenizer."""

    def __init__(self, folder, peft_text):
        self.folder = folder
        self.peft_text = peft_text
        self.tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.rows = [self.ids(w)[0] for w in LABELS]
        assert all(len(self.ids(w)) == 1 for w in LABELS)

    def ids(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def base(self):
        return AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32).eval()

    def label_logits(self, model, texts):
        """Label-word logits at the last position, one unpadded example at a time."""
        out = []
        for t in texts:
            ids = torch.tensor([self.ids(self.peft_text(t))])
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            out.append(logits[0, -1, self.rows])
        return torch.stack(out)


def check(name, ours, theirs, failures):
    diff = (ours - theirs.double()).abs().max().item()
    ok = diff <= TOL and ours.shape == theirs.shape
    print(f"{name}: max |logit diff| = {diff:.3g} over {ours.shape[0]} examples x {ours.shape[1]} labels "
          f"({'ok' if ok else 'FAIL'}, tolerance {TOL})")
    if not ok:
        failures.append(f"{name}: {diff:.3g} > {TOL}")
    return diff


def compare_files(ours_dir, peft_dir, failures, same_values):
    """adapter_config.json keys and value types; safetensors names, shapes, dtypes, metadata."""
    with open(os.path.join(ours_dir, "adapter_config.json")) as f:
        ours = json.load(f)
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        theirs = json.load(f)
    problems = []
    if set(ours) != set(theirs):
        problems.append(f"keys only ours {sorted(set(ours) - set(theirs))}, only PEFT's {sorted(set(theirs) - set(ours))}")
    for k in sorted(set(ours) & set(theirs)):
        if type(ours[k]) is not type(theirs[k]) and not (ours[k] is None or theirs[k] is None):
            problems.append(f"`{k}`: ours {ours[k]!r} ({type(ours[k]).__name__}), PEFT {theirs[k]!r} ({type(theirs[k]).__name__})")
    for k in same_values:
        if ours.get(k) != theirs.get(k):
            problems.append(f"`{k}`: ours {ours.get(k)!r}, PEFT {theirs.get(k)!r}")

    def tensors(folder):
        with safe_open(os.path.join(folder, "adapter_model.safetensors"), framework="pt") as f:
            return {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in f.keys()}, f.metadata()

    (ours_t, ours_meta), (theirs_t, theirs_meta) = tensors(ours_dir), tensors(peft_dir)
    if ours_t != theirs_t:
        problems.append(f"tensors: ours {ours_t}, PEFT {theirs_t}")
    if ours_meta != theirs_meta:
        problems.append(f"safetensors metadata: ours {ours_meta}, PEFT {theirs_meta}")
    print(f"files: adapter_config.json {len(ours)} keys, tensors {ours_t}, metadata {ours_meta} "
          f"({'same as PEFT' if not problems else 'FAIL'})")
    for p in problems:
        print(f"  {p}")
        failures.append(f"files: {p}")


def task_toml(name, template, method, lr):
    """A promptune task config over train.jsonl for the tiny model; `method` holds the lines of
    its [method] table; results go to run-NAME."""
    return f"""model = "model"
output_dir = "run-{name}"
template = "{template}"
max_len = 32
[method]
{method}
[verbalizer]
labels = ["negative", "positive"]
words = [["negative"], ["positive"]]
[data.train]
path = "train.jsonl"
columns = {{ text_a = "text" }}
label_column = "label"
label_map = {{ "0" = "negative", "1" = "positive" }}
[train]
lr = {lr}
batch_size = 8
epochs = 5
"""


def train_export_compare(binary, tmp, name, what, ref, texts, plain, failures):
    """promptune trains task-NAME.toml, exports it with export-peft and predicts; PeftModel loads
    the export and scores the same texts. Fails when the trained `what` (prompt, prefix) hardly
    moves the logits (`plain`: the base model's) or when the two sides differ by more than TOL;
    returns the difference."""
    run(binary, "train", "--config", f"task-{name}.toml", cwd=tmp)
    run(binary, "export-peft", "--adapter", f"run-{name}/adapter", "--out", f"export-{name}", cwd=tmp)
    ours = our_logits(binary, f"run-{name}/adapter", "test.jsonl", f"ours-{name}.jsonl", cwd=tmp)
    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(ref.base(), os.path.join(tmp, f"export-{name}")).eval()
        theirs = ref.label_logits(peft_model, texts)
    effect = (theirs - plain).abs().max().item()
    print(f"{name}: trained {what} moves the label logits by up to {effect:.3g} (vs. no {what})")
    if effect < 1e-2:
        failures.append(f"{name}: the {what} hardly changes the logits ({effect:.3g}): the comparison would prove nothing")
    return check(f"{name}: export -> PEFT", ours, theirs, failures)
