"""Reference outputs of transformers on the three real models, for the real-model checks
(crates/promptune/tests/real_models.rs, run when MODELS_DIR is set).

    MODELS_DIR=$(bash ../shared/models/fetch.sh) python tests/reference/make_real_fixtures.py

Writes crates/promptune/tests/fixtures/real/*.json: for each prompt the token ids transformers'
tokenizer gives and next-token logits at a fixed set of vocabulary rows (the top 50 and 150
spread over the vocabulary: the whole 262k-row Gemma vector would not be a small fixture);
for MiniLM the last hidden state of two sentences.
"""
import json
import os

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

MODELS = os.environ["MODELS_DIR"]
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "promptune", "tests", "fixtures", "real")
PROMPTS = ["The capital of France is", "The capital of France is the city of", "Once upon a time, there was a", "1, 2, 3, 4,"]
torch.set_grad_enabled(False)


def decoder(name, folder, file):
    d = os.path.join(MODELS, folder)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=file, dtype=torch.float32).eval()
    cases = []
    for p in PROMPTS:
        ids = tok(p, return_tensors="pt").input_ids
        logits = model(input_ids=ids).logits[0, -1]
        top = torch.topk(logits, 50).indices.tolist()
        spread = list(range(0, logits.shape[0], logits.shape[0] // 150))[:150]
        rows = sorted(set(top + spread))
        greedy = model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:]
        cases.append({"prompt": p, "ids": ids[0].tolist(), "rows": rows,
                      "logits": [float(logits[r]) for r in rows],
                      "greedy_ids": greedy.tolist(), "greedy_text": tok.decode(greedy)})
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump({"model": f"{folder}/{file}", "cases": cases}, f)


def minilm():
    d = os.path.join(MODELS, "all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    sents = ["A man is playing a guitar.", "promptune adapts frozen transformers with tiny prompts!"]
    enc = tok(sents, padding=True, return_tensors="pt")
    out = model(**enc).last_hidden_state
    with open(os.path.join(OUT, "minilm.json"), "w") as f:
        json.dump({"sentences": sents, "input_ids": enc.input_ids.tolist(),
                   "attention_mask": enc.attention_mask.tolist(), "shape": list(out.shape),
                   "last_hidden": [round(float(x), 7) for x in out.flatten()]}, f)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    minilm()
    decoder("smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    decoder("gemma3", "gemma-3-270m", "gemma-3-270m-q4_k_m.gguf")
    print("written", os.listdir(OUT))
