"""PEFT PREFIX_TUNING on encoder-decoders (SEQ_2_SEQ_LM), for the interop tests.

    python tests/reference/make_peft_seq2seq_fixture.py

For the tiny BART and T5 fixtures: a PEFT 0.21 PrefixTuningConfig(task_type=SEQ_2_SEQ_LM,
num_virtual_tokens=3) with N(0, 1) prompt_embeddings (seed 0), saved with save_pretrained under
tests/fixtures/<model>/peft-prefix/, and the logits PEFT's model gives for a fixed source and
decoder input in peft-prefix/case.safetensors (`input_ids`, `decoder_input_ids`, `logits`). PEFT
puts this prefix in decoder self-attention only (it resets the cross-attention cache), which is
promptune's `placement = "peft"`.
"""
import os

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForSeq2SeqLM

root = os.path.join(os.path.dirname(__file__), "../../crates/promptune/tests/fixtures")
for name in ["tiny-bart", "tiny-t5"]:
    folder = os.path.join(root, name)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=torch.float32).eval()
    pm = get_peft_model(model, PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=3))
    torch.manual_seed(0)
    with torch.no_grad():
        pm.prompt_encoder["default"].embedding.weight.normal_()
    out = os.path.join(folder, "peft-prefix")
    pm.peft_config["default"].base_model_name_or_path = name
    pm.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))
    start = model.config.decoder_start_token_id
    input_ids = torch.tensor([[5, 9, 13, 17, 21, 2]])
    decoder_input_ids = torch.tensor([[start, 7, 11, 4]])
    with torch.no_grad():
        logits = pm(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                    decoder_input_ids=decoder_input_ids).logits
    save_file({"input_ids": input_ids.to(torch.int64), "decoder_input_ids": decoder_input_ids.to(torch.int64),
               "logits": logits.contiguous()}, os.path.join(out, "case.safetensors"))
    print(name, tuple(logits.shape))
