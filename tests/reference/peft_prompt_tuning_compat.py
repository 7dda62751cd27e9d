"""PEFT compatibility of promptune's PROMPT_TUNING adapters, checked against PEFT itself.

    python tests/reference/peft_prompt_tuning_compat.py [PROMPTUNE_BINARY]

(or `bash tests/reference/peft_compat.sh`, which builds the binary first). The binary defaults
to target/release/promptune. Runs in the reference venv (torch, transformers, peft; see
README, "Regenerating the fixtures") on the tiny random Llama fixture, in a temporary folder:

  a. promptune trains a 4-token prompt (template `{soft*4}review: {text_a} sentiment:{mask}`,
     label words "negative"/"positive"), exports it with `export-peft` and predicts raw label
     logits with `predict`;
  b. transformers + PeftModel.from_pretrained load that export and compute the logits of the
     label words at the answer position for the same texts (input: the template without its
     soft slot, PEFT prepends the virtual tokens): |ours - PEFT| <= 1e-4;
  c. PEFT trains its own PromptTuning adapter (4 virtual tokens, AdamW) and saves it;
     `promptune import-peft` + `predict` reproduce PEFT's logits within 1e-4;
  d. the exported adapter_config.json has the keys and value types PEFT writes for the same
     config, and adapter_model.safetensors the same tensor names, shapes, dtypes and metadata.

Both sides read the same word-level tokenizer.json (the one crates/promptune/tests/common/tiny.rs
writes); it adds no BOS, so PEFT's [virtual tokens, text] and our [soft tokens, text] are the
same sequence. Each PEFT input is run alone (no padding); promptune predicts in padded batches
of mixed lengths. Exits non-zero on any failure; prints the measured differences.
"""
import os
import sys
import tempfile
import warnings

import torch
import transformers
from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model

from peft_compat_common import ROOT, Reference, check, compare_files, examples, make_model, our_logits, run, write_jsonl

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)

N_VIRTUAL = 4
TEMPLATE = "{soft*4}review: {text_a} sentiment:{mask}"


def peft_text(text):
    """The template with its soft slot (PEFT prepends those) and answer slot removed."""
    return f"review: {text} sentiment:"


SAME_VALUES = ["peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads",
               "num_transformer_submodules", "inference_mode", "prompt_tuning_init", "peft_version"]


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "promptune"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"FAIL: no promptune binary at {binary} (cargo build --release -p promptune-cli)")
    torch.manual_seed(0)
    failures = []
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
        with open(os.path.join(tmp, "task.toml"), "w") as f:
            f.write(f"""model = "model"
output_dir = "run"
template = "{TEMPLATE}"
max_len = 32
[method]
init = {{ kind = "text", text = "positive negative review" }}
[verbalizer]
labels = ["negative", "positive"]
words = [["negative"], ["positive"]]
[data.train]
path = "train.jsonl"
columns = {{ text_a = "text" }}
label_column = "label"
label_map = {{ "0" = "negative", "1" = "positive" }}
[train]
lr = 0.3
batch_size = 8
epochs = 5
""")

        # a. promptune trains, exports to PEFT, predicts
        run(binary, "train", "--config", "task.toml", cwd=tmp)
        run(binary, "export-peft", "--adapter", "run/adapter", "--out", "export", cwd=tmp)
        ours = our_logits(binary, "run/adapter", "test.jsonl", "ours.jsonl", cwd=tmp)

        # b. PEFT loads the export
        with torch.no_grad():
            base = ref.base()
            plain = ref.label_logits(base, texts)
            peft_model = PeftModel.from_pretrained(base, os.path.join(tmp, "export")).eval()
            theirs = ref.label_logits(peft_model, texts)
        effect = (theirs - plain).abs().max().item()
        print(f"trained prompt moves the label logits by up to {effect:.3g} (vs. no prompt)")
        if effect < 1e-2:
            failures.append(f"the prompt hardly changes the logits ({effect:.3g}): the comparison would prove nothing")
        export_diff = check("export -> PEFT", ours, theirs, failures)

        # c. PEFT trains, promptune imports
        torch.manual_seed(1)
        pm = get_peft_model(ref.base(), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL))
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=0.1)
        gold = torch.tensor([l for _, l in train])
        pm.train()
        for step in range(3):
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
        run(binary, "import-peft", "--peft", "peft-trained", "--config", "task.toml", "--out", "imported", cwd=tmp)
        ours = our_logits(binary, "imported", "test.jsonl", "imported.jsonl", cwd=tmp)
        import_diff = check("PEFT -> import", ours, theirs, failures)

        # d. the files
        compare_files(os.path.join(tmp, "export"), os.path.join(tmp, "peft-trained"), failures, SAME_VALUES)

    print(f"summary: export->PEFT max diff {export_diff:.3g}, PEFT->import max diff {import_diff:.3g}, "
          f"files {'match' if not any(f.startswith('files') for f in failures) else 'DIFFER'}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
