"""PEFT compatibility of promptune's PREFIX_TUNING adapters, checked against PEFT itself.

    python tests/reference/peft_prefix_compat.py [PROMPTUNE_BINARY]

The binary defaults to target/release/promptune. Runs in the reference venv (torch,
transformers, peft 0.21.2) on the tiny random Llama fixture (GQA: 4 query heads, 2 key/value
heads), in a temporary folder, for both parametrisations (direct, and the MLP folded away):

  a. promptune trains a 4-token prefix (template `review: {text_a} sentiment:{mask}`, label
     words "negative"/"positive"), exports it with `export-peft` and predicts raw label logits
     with `predict`;
  b. transformers + PeftModel.from_pretrained load that export and compute the logits of the
     label words at the last position for the same texts: |ours - PEFT| <= 1e-4;
  c. PEFT trains its own PrefixTuning adapter (4 virtual tokens, AdamW) and saves it;
     `promptune import-peft` + `predict` reproduce PEFT's logits within 1e-4;
  d. the exported adapter_config.json has the keys and value types PEFT writes for the same
     config, the same values for the sizes, and adapter_model.safetensors the same tensor
     names, shapes, dtypes and metadata.

Both sides read the same word-level tokenizer.json (the one crates/promptune/tests/common/tiny.rs
writes); it adds no BOS. Each PEFT input is run alone (no padding); promptune predicts in padded
batches of mixed lengths. Exits non-zero on any failure; prints the measured differences.
"""
import os
import sys
import tempfile
import warnings

import torch
import transformers
from peft import PeftModel, PrefixTuningConfig, TaskType, get_peft_model

from peft_compat_common import (ROOT, Reference, check, compare_files, examples, make_model, our_logits, run, task_toml,
                                 train_export_compare, write_jsonl)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)

N_VIRTUAL = 4
TEMPLATE = "review: {text_a} sentiment:{mask}"


def peft_text(text):
    """The template with its answer slot removed (prefix tuning adds nothing to the input)."""
    return f"review: {text} sentiment:"


SAME_VALUES = ["peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads",
               "num_transformer_submodules", "encoder_hidden_size", "prefix_projection", "init_weights",
               "peft_version"]


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "promptune"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"FAIL: no promptune binary at {binary} (cargo build --release -p promptune-cli)")
    torch.manual_seed(0)
    failures = []
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_model(os.path.join(tmp, "model"))
        ref = Reference(os.path.join(tmp, "model"), peft_text)
        train = examples(32, 0)
        # the dev texts, plus a few of other lengths so that promptune's batches are padded
        test = examples(16, 100) + [("the plot", 0), ("great", 1), ("the acting was a nice film is good", 1),
                                     ("a movie was the awful plot the acting was poor", 0)]
        write_jsonl(os.path.join(tmp, "train.jsonl"), train)
        write_jsonl(os.path.join(tmp, "test.jsonl"), test)
        texts = [t for t, _ in test]
        with torch.no_grad():
            plain = ref.label_logits(ref.base(), texts)

        for projection in [False, True]:
            name = "mlp" if projection else "direct"
            with open(os.path.join(tmp, f"task-{name}.toml"), "w") as f:
                f.write(task_toml(name, TEMPLATE, f"kind = \"prefix_tuning\"\nnum_virtual_tokens = {N_VIRTUAL}\nprefix_projection = {'true' if projection else 'false'}", 0.05))
            # a, b. promptune trains, exports to PEFT and predicts; PEFT loads the export
            diffs[f"{name} export->PEFT"] = train_export_compare(
                binary, tmp, name, "prefix", ref, texts, plain, failures)

        # c. PEFT trains its own prefix (a few AdamW steps), promptune imports it; and PEFT's own
        # files for the same config
        torch.manual_seed(1)
        pm = get_peft_model(ref.base(), PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL))
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=0.05)
        gold = torch.tensor([l for _, l in train])
        pm.train()
        for i in range(0, len(train), 8):
            logits = ref.label_logits(pm, [t for t, _ in train[i:i + 8]])
            loss = torch.nn.functional.cross_entropy(logits, gold[i:i + 8])
            opt.zero_grad()
            loss.backward()
            opt.step()
        pm.save_pretrained(os.path.join(tmp, "peft-trained"))
        with torch.no_grad():
            reloaded = PeftModel.from_pretrained(ref.base(), os.path.join(tmp, "peft-trained")).eval()
            theirs = ref.label_logits(reloaded, texts)
        run(binary, "import-peft", "--peft", "peft-trained", "--config", "task-direct.toml", "--out", "imported",
            cwd=tmp)
        ours = our_logits(binary, "imported", "test.jsonl", "imported.jsonl", cwd=tmp)
        diffs["PEFT-trained import"] = check("PEFT -> import", ours, theirs, failures)
        compare_files(os.path.join(tmp, "export-direct"), os.path.join(tmp, "peft-trained"), failures, SAME_VALUES)

    print("summary: " + ", ".join(f"{k} max diff {v:.3g}" for k, v in diffs.items())
          + f", files {'match' if not any(f.startswith('files') for f in failures) else 'DIFFER'}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
