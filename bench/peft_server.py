"""The baseline a PEFT user would build for `promptune serve`'s load test: a plain Python HTTP
server (http.server, one thread per connection) holding SmolLM2-135M-Instruct (the GGUF,
dequantized to f32 by transformers) with every adapter loaded (one PeftModel per PEFT method over
the one base model: PEFT cannot hold prompt tuning and P-Tuning adapters in one PeftModel),
switching with `set_adapter` per request under a lock (PEFT runs one adapter per forward pass
for prompt methods), answering POST /v1/classify as promptune does for the SST-2 prompts.

    python bench/peft_server.py MODELS_DIR PORT NAME=PEFT_DIR [NAME=PEFT_DIR ...] [--threads N]

The prompt is "Review: {text}\\nSentiment:", read at the next token, verbalizer " negative" /
" positive" (first token), left padding: the template of examples/sst2-smollm2*.toml, whose
soft tokens come first, as PEFT puts its virtual tokens.
"""
import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("models")
ap.add_argument("port", type=int)
ap.add_argument("adapters", nargs="+", help="NAME=PEFT_DIR")
ap.add_argument("--threads", type=int, default=os.cpu_count())
args = ap.parse_args()
torch.set_num_threads(args.threads)

folder = os.path.join(args.models, "smollm2-135m-instruct")
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
tok.padding_side = "left"
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
rows = [tok(" negative", add_special_tokens=False).input_ids[0], tok(" positive", add_special_tokens=False).input_ids[0]]
labels = ["negative", "positive"]

# PEFT keeps adapters of one peft_type per PeftModel ("Cannot combine adapters with different
# peft types"), so there is one PeftModel per type, all over the same base model (prompt methods
# do not change the base model's modules), and set_adapter within it
pairs = [a.split("=", 1) for a in args.adapters]
models = {}  # peft type -> PeftModel
owner = {}  # adapter name -> its PeftModel
for name, path in pairs:
    with open(os.path.join(path, "adapter_config.json")) as f:
        kind = json.load(f)["peft_type"]
    if kind not in models:
        models[kind] = PeftModel.from_pretrained(base, path, adapter_name=name)
        models[kind].eval()
    else:
        models[kind].load_adapter(path, adapter_name=name)
    owner[name] = models[kind]
names = set(owner)
lock = threading.Lock()


def classify(adapter, texts):
    enc = tok([f"Review: {t}\nSentiment:" for t in texts], return_tensors="pt", padding=True)
    with lock, torch.inference_mode():
        model = owner[adapter]
        model.set_adapter(adapter)
        logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, -1, :]
    probs = torch.softmax(logits[:, rows], dim=-1).tolist()
    return [{"label": labels[max(range(2), key=lambda i: p[i])], "scores": dict(zip(labels, p))} for p in probs]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {"status": "ok", "adapters": len(names)})

    def do_POST(self):
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if body.get("adapter") not in names or not body.get("inputs"):
                return self.answer(404, {"error": "unknown adapter or no inputs"})
            self.answer(200, {"adapter": body["adapter"], "results": classify(body["adapter"], body["inputs"])})
        except Exception as e:  # the baseline stays up, as ours does
            self.answer(500, {"error": str(e)})


print(f"listening on http://127.0.0.1:{args.port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
