"""PEFT compatibility of promptune's P_TUNING adapters, checked against PEFT itself.

    python tests/reference/peft_p_tuning_compat.py [PROMPTUNE_BINARY]

The binary defaults to target/release/promptune. Runs in the reference venv (torch,
transformers, peft 0.21.2) on the tiny random Llama fixture, in a temporary folder, for both
prompt encoders (MLP and LSTM):

  a. promptune trains a 4-token P-Tuning prompt (template `{soft*4}review: {text_a}
     sentiment:{mask}`, label words "negative"/"positive"), exports it with `export-peft` (the
     encoder's output as `prompt_embeddings`) and predicts raw label logits with `predict`;
  b. transformers + PeftModel.from_pretrained load that export and compute the logits of the
     label words at the answer position for the same texts (input: the template without its
     soft slot, PEFT prepends the virtual tokens): |ours - PEFT| <= 1e-4;
  c. PEFT trains its own P_TUNING adapter of the same encoder (a few AdamW steps) and saves it;
     the exported adapter_config.json has the keys and value types PEFT writes for the same
     config, the same values for the sizes and the encoder settings, and
     adapter_model.safetensors the same tensor names, shapes, dtypes and metadata;
  d. our adapter's encoder weights (`p_tuning.*`) loaded into PEFT's own PromptEncoder (training
     mode, so it runs its MLP / LSTM) give the exported embeddings within 1e-5: the encoders are
     the same networks;
  e. the adapter PEFT trained in c, loaded back by PeftModel.from_pretrained (which runs the saved
     encoder output as is), and the same adapter brought in with `promptune import-peft` and run
     with `predict`, give the same label logits within 1e-4.

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
from peft import PeftModel, PromptEncoderConfig, TaskType, get_peft_model
from peft.tuners.p_tuning import PromptEncoder
from safetensors.torch import load_file

from peft_compat_common import (ROOT, Reference, check, compare_files, examples, make_model, our_logits, run, task_toml,
                                 train_export_compare, write_jsonl)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)

N_VIRTUAL = 4
ENCODER_HIDDEN = 16
TEMPLATE = "{soft*4}review: {text_a} sentiment:{mask}"


def peft_text(text):
    """The template with its soft slot (PEFT prepends those) and answer slot removed."""
    return f"review: {text} sentiment:"


SAME_VALUES = ["peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads",
               "num_transformer_submodules", "inference_mode", "encoder_reparameterization_type",
               "encoder_hidden_size", "encoder_num_layers", "encoder_dropout", "peft_version"]


def check_encoder(tmp, encoder, failures):
    ours = load_file(os.path.join(tmp, f"run-{encoder}", "adapter", "adapter.safetensors"))
    exported = load_file(os.path.join(tmp, f"export-{encoder}", "adapter_model.safetensors"))["prompt_embeddings"]
    n, hidden = ours["p_tuning.embedding"].shape
    cfg = PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, token_dim=hidden,
                              num_layers=2, num_attention_heads=4, num_transformer_submodules=1,
                              encoder_reparameterization_type=encoder.upper(), encoder_hidden_size=ENCODER_HIDDEN)
    pe = PromptEncoder(cfg).eval()
    state = {"embedding.weight": ours["p_tuning.embedding"]}
    # ours: linear weights [in, out], LSTM direction k = 2 * layer + reverse with one bias (b_ih + b_hh)
    layers = [0, 2, 4] if encoder == "mlp" else [0, 2]
    for i, at in enumerate(layers):
        state[f"mlp_head.{at}.weight"] = ours[f"p_tuning.mlp.{i}.weight"].T
        state[f"mlp_head.{at}.bias"] = ours[f"p_tuning.mlp.{i}.bias"]
    if encoder == "lstm":
        for k in range(4):
            suffix = f"l{k // 2}" + ("_reverse" if k % 2 else "")
            state[f"lstm_head.weight_ih_{suffix}"] = ours[f"p_tuning.lstm.{k}.w_ih"].T
            state[f"lstm_head.weight_hh_{suffix}"] = ours[f"p_tuning.lstm.{k}.w_hh"].T
            state[f"lstm_head.bias_ih_{suffix}"] = ours[f"p_tuning.lstm.{k}.bias"]
            state[f"lstm_head.bias_hh_{suffix}"] = torch.zeros_like(ours[f"p_tuning.lstm.{k}.bias"])
    pe.load_state_dict(state, strict=True)
    with torch.no_grad():
        theirs = pe(torch.arange(n))
    diff = (theirs - exported).abs().max().item()
    ok = diff <= 1e-5
    print(f"{encoder}: our encoder weights in PEFT's PromptEncoder: max |embedding diff| = {diff:.3g} "
          f"({'ok' if ok else 'FAIL'}, tolerance 1e-5)")
    if not ok:
        failures.append(f"{encoder} encoder: {diff:.3g} > 1e-5")
    return diff


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

        for encoder in ["mlp", "lstm"]:
            with open(os.path.join(tmp, f"task-{encoder}.toml"), "w") as f:
                f.write(task_toml(encoder, TEMPLATE, f"kind = \"p_tuning\"\nencoder_type = \"{encoder}\"\nencoder_hidden_size = {ENCODER_HIDDEN}", 0.01))
            # a, b. promptune trains, exports to PEFT and predicts; PEFT loads the export
            diffs[f"{encoder} export->PEFT"] = train_export_compare(
                binary, tmp, encoder, "prompt", ref, texts, plain, failures)

            # d. our encoder weights in PEFT's PromptEncoder
            diffs[f"{encoder} encoder"] = check_encoder(tmp, encoder, failures)

            # c. PEFT trains its own P_TUNING adapter with the same encoder and saves it
            torch.manual_seed(1)
            pm = get_peft_model(ref.base(), PromptEncoderConfig(
                task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL,
                encoder_reparameterization_type=encoder.upper(), encoder_hidden_size=ENCODER_HIDDEN))
            opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=0.01)
            gold = torch.tensor([l for _, l in train])
            pm.train()
            for i in range(0, len(train), 8):
                logits = ref.label_logits(pm, [t for t, _ in train[i:i + 8]])
                loss = torch.nn.functional.cross_entropy(logits, gold[i:i + 8])
                opt.zero_grad()
                loss.backward()
                opt.step()
            pm.save_pretrained(os.path.join(tmp, f"peft-trained-{encoder}"))
            compare_files(os.path.join(tmp, f"export-{encoder}"), os.path.join(tmp, f"peft-trained-{encoder}"),
                          failures, SAME_VALUES)

            # e. PEFT's adapter, reloaded by PEFT and imported by promptune
            with torch.no_grad():
                reloaded = PeftModel.from_pretrained(ref.base(), os.path.join(tmp, f"peft-trained-{encoder}")).eval()
                theirs = ref.label_logits(reloaded, texts)
            run(binary, "import-peft", "--peft", f"peft-trained-{encoder}", "--config", f"task-{encoder}.toml",
                "--out", f"imported-{encoder}", cwd=tmp)
            ours = our_logits(binary, f"imported-{encoder}", "test.jsonl", f"imported-{encoder}.jsonl", cwd=tmp)
            diffs[f"{encoder} PEFT->import"] = check(f"{encoder} PEFT -> import", ours, theirs, failures)

    print("summary: " + ", ".join(f"{k} max diff {v:.3g}" for k, v in diffs.items())
          + f", files {'match' if not any(f.startswith('files') for f in failures) else 'DIFFER'}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
