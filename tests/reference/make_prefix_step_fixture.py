"""Writes crates/promptune/tests/fixtures/tiny-bert/prefix_tagging_step.safetensors: the loss and the
gradients of one training step of PEFT prefix tuning (P-Tuning v2: 4 deep prompt positions, no MLP)
with a token-classification head on the tiny BERT fixture, from fixed starting values. Read by
crates/promptune/tests/peft_training_step.rs, which runs the same step in promptune.

The model is in eval mode (dropout is random on both sides, so it stays out of the comparison);
everything else is PEFT's training step: prefix keys/values through past_key_values, positions
after the prefix, the prefix visible to every token, cross-entropy over the labelled positions
(-100 elsewhere), gradients for the prefix and the classifier only.

  python tests/reference/make_prefix_step_fixture.py   # torch, transformers, peft 0.21.2
"""
import os

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from safetensors.torch import save_file
from transformers import BertForTokenClassification

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(ROOT, "crates", "promptune", "tests", "fixtures", "tiny-bert")
N_PREFIX, N_TAGS = 4, 5

torch.manual_seed(7)
model = BertForTokenClassification.from_pretrained(FIXTURE, num_labels=N_TAGS)
with torch.no_grad():
    model.classifier.weight.normal_(0.0, 0.3)
    model.classifier.bias.normal_(0.0, 0.1)
model = get_peft_model(model, PrefixTuningConfig(task_type=TaskType.TOKEN_CLS, num_virtual_tokens=N_PREFIX))
model.eval()
prefix = model.prompt_encoder["default"].embedding.weight
classifier = model.base_model.classifier.modules_to_save["default"]

# two sentences, the second padded; [CLS] = 2 and [SEP] = 3 unlabelled, one sub-token unlabelled
input_ids = torch.tensor([[2, 5, 21, 11, 24, 30, 3], [2, 7, 26, 20, 3, 0, 0]])
attention_mask = (input_ids != 0).long()
labels = torch.tensor([[-100, 1, 0, 3, -100, 0, -100], [-100, 2, 0, 4, -100, -100, -100]])
out = model(input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids), labels=labels)
out.loss.backward()

tensors = {
    "prefix": prefix.detach().clone(),
    "classifier.weight": classifier.weight.detach().clone(),
    "classifier.bias": classifier.bias.detach().clone(),
    "input_ids": input_ids,
    "labels": labels,
    "logits": out.logits.detach().clone(),
    "loss": out.loss.detach().reshape(1).clone(),
    "grad.prefix": prefix.grad.clone(),
    "grad.classifier.weight": classifier.weight.grad.clone(),
    "grad.classifier.bias": classifier.bias.grad.clone(),
}
path = os.path.join(FIXTURE, "prefix_tagging_step.safetensors")
save_file({k: v.contiguous() for k, v in tensors.items()}, path)
print(f"loss {out.loss.item():.6f}, |grad prefix| {prefix.grad.norm():.4e}, written {path}")
