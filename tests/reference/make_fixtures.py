"""Builds the backbone parity fixtures: tiny random-weight checkpoints of each family written
by HF transformers, inputs with every prompt hook, and the outputs transformers computes.

Run with the reference venv (bash ../shared/reference/setup.sh):
    python tests/reference/make_fixtures.py
Writes crates/promptune/tests/fixtures/tiny-<family>/{config.json, model.safetensors,
cases.safetensors} (bert, roberta, llama, gemma3, gpt2, bart, t5 and t5-v1_1), the greedy and
beam-search outputs of `generate` (tiny-gpt2/generate.safetensors, beams.safetensors of GPT-2,
BART and T5) and tiny-llama.gguf / tiny-gemma3.gguf / tiny-gpt2.gguf. Families can be named to
write only theirs: `python tests/reference/make_fixtures.py gpt2 bart t5`.

Case tensors are named `<case>.<what>`: input_ids, attention_mask, position_ids (i64),
soft_values / soft_positions, prefix_key.<l> / prefix_value.<l>, deep.<l> / deep_at,
hidden.<l> (HF's hidden states), logits (full vocabulary at every position); encoder-decoder
cases add decoder_input_ids / decoder_attention_mask, encoder_hidden.<l>, and
encoder_prefix_* / decoder_prefix_* / cross_prefix_* (+ cross_prefix_mask) per attention site.
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
import transformers
from transformers import (BartConfig, BartForConditionalGeneration, BertConfig, BertForMaskedLM,
                          Gemma3ForCausalLM, Gemma3TextConfig, T5Config, T5ForConditionalGeneration,
                          GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, RobertaConfig,
                          RobertaForMaskedLM)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.models.bart import modeling_bart
from transformers.models.t5 import modeling_t5

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "promptune", "tests", "fixtures")
torch.manual_seed(0)
VOCAB = 64


def randomize(model):
    """HF initialises norms to 1 (Gemma: 0) and biases to 0; make every weight matter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                is_norm = "norm" in name.lower() or ".ln_" in name
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if is_norm and "gemma" not in type(model).__name__.lower() else 0.0))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.08)
    return model


def save_model(model, name):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(out):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(out, f))
    return out


def batch(lengths, pad_id, left=False):
    g = torch.Generator().manual_seed(sum(lengths))
    t = max(lengths)
    ids = torch.full((len(lengths), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(lengths), t), dtype=torch.long)
    for i, n in enumerate(lengths):
        row = torch.randint(3, VOCAB, (n,), generator=g)
        if left:
            ids[i, t - n:] = row
            mask[i, t - n:] = 1
        else:
            ids[i, :n] = row
            mask[i, :n] = 1
    return ids, mask


def record(cases, case, out, **inputs):
    for k, v in inputs.items():
        cases[f"{case}.{k}"] = v.contiguous()
    for l, h in enumerate(out.hidden_states):
        cases[f"{case}.hidden.{l}"] = h.detach().float().contiguous()
    if getattr(out, "logits", None) is not None:
        cases[f"{case}.logits"] = out.logits.detach().float().contiguous()


def prefix_cache(cfg, b, p, kv_heads, head_dim, cases, case):
    g = torch.Generator().manual_seed(7)
    cache = DynamicCache()
    for l in range(cfg.num_hidden_layers):
        k = torch.randn(b, kv_heads, p, head_dim, generator=g)
        v = torch.randn(b, kv_heads, p, head_dim, generator=g)
        cases[f"{case}.prefix_key.{l}"] = k.clone()
        cases[f"{case}.prefix_value.{l}"] = v.clone()
        cache.update(k, v, l)
    return cache


def soft_case(model, embed_fn, ids, mask, positions, cases, extra=None):
    g = torch.Generator().manual_seed(3)
    emb = embed_fn(ids).detach().clone()
    soft = torch.randn(1, len(positions), emb.shape[-1], generator=g)
    for k, p in enumerate(positions):
        emb[:, p] = soft[0, k]
    kwargs = dict(inputs_embeds=emb, attention_mask=mask, output_hidden_states=True)
    if extra:
        kwargs.update(extra)
    out = model(**kwargs)
    pos = torch.tensor([positions] * ids.shape[0], dtype=torch.long)
    record(cases, "soft", out, input_ids=ids, attention_mask=mask, soft_values=soft, soft_positions=pos,
           **({"position_ids": extra["position_ids"]} if extra and "position_ids" in extra else {}))


def deep_tokens(b, n, hidden, layers):
    g = torch.Generator().manual_seed(11)
    return {l: torch.randn(1, n, hidden, generator=g) for l in layers}


def decoder_cases(model, cfg, kv_heads, head_dim, embed_fn, blocks=None):
    cases = {}
    ids, mask = batch([9, 6], 0)
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    record(cases, "plain", out, input_ids=ids, attention_mask=mask)

    lids, lmask = batch([9, 6], 0, left=True)
    if blocks is None:
        out = model(input_ids=lids, attention_mask=lmask, output_hidden_states=True)
        record(cases, "left", out, input_ids=lids, attention_mask=lmask)
    else:
        # learned absolute positions: number the real tokens, as generate() does for GPT-2
        lpos = (lmask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=lids, attention_mask=lmask, position_ids=lpos, output_hidden_states=True)
        record(cases, "left", out, input_ids=lids, attention_mask=lmask, position_ids=lpos)

    soft_case(model, embed_fn, ids, mask, [0, 1, 2, 5], cases)

    p = 3
    cache = prefix_cache(cfg, 2, p, kv_heads, head_dim, cases, "prefix")
    full_mask = torch.cat([torch.ones(2, p, dtype=torch.long), mask], dim=1)
    out = model(input_ids=ids, attention_mask=full_mask, past_key_values=cache, output_hidden_states=True)
    record(cases, "prefix", out, input_ids=ids, attention_mask=mask)

    # deep tokens: inserted after the embedding at index 1, overwritten before layer 1
    at, n = 1, 2
    toks = deep_tokens(2, n, cfg.hidden_size, [0, 1])
    emb = embed_fn(ids).detach()
    x = torch.cat([emb[:, :at], toks[0].expand(2, -1, -1), emb[:, at:]], dim=1)
    dmask = torch.cat([mask[:, :at], torch.ones(2, n, dtype=torch.long), mask[:, at:]], dim=1)
    inputs_seen = {}

    def pre_hook(idx):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            if idx in toks and idx > 0:
                h = torch.cat([h[:, :at], toks[idx].expand(2, -1, -1), h[:, at + n:]], dim=1)
            inputs_seen[idx] = h.detach().clone()
            if args:
                return (h,) + tuple(args[1:]), kwargs
            kwargs["hidden_states"] = h
            return args, kwargs
        return hook

    blocks = model.model.layers if blocks is None else blocks
    handles = [layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, layer in enumerate(blocks)]
    out = model(inputs_embeds=x, attention_mask=dmask, output_hidden_states=True)
    for h in handles:
        h.remove()
    hidden = [inputs_seen[i] for i in range(cfg.num_hidden_layers)] + [out.hidden_states[-1]]
    cases["deep.input_ids"] = ids
    cases["deep.attention_mask"] = mask
    cases["deep.deep_at"] = torch.tensor([at], dtype=torch.long)
    for l, t in toks.items():
        cases[f"deep.deep.{l}"] = t
    for l, h in enumerate(hidden):
        cases[f"deep.hidden.{l}"] = h.float().contiguous()
    cases["deep.logits"] = out.logits.detach().float()
    return cases


def encoder_cases(model, cfg, pad_id, roberta):
    cases = {}
    ids, mask = batch([9, 6], pad_id)
    types = torch.zeros_like(ids)
    if not roberta:
        types[:, 4:] = 1
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    record(cases, "plain", out, input_ids=ids, attention_mask=mask, token_type_ids=types)

    base = model.bert if hasattr(model, "bert") else model.roberta
    extra = None
    if roberta:
        # HF counts positions from the ids when they are given; pass the same explicitly
        from transformers.models.roberta.modeling_roberta import RobertaEmbeddings
        extra = {"position_ids": RobertaEmbeddings.create_position_ids_from_input_ids(ids, pad_id)}
    soft_case(model, base.embeddings.word_embeddings, ids, mask, [0, 1, 2, 5], cases, extra)

    p = 3
    heads = cfg.num_attention_heads
    hd = cfg.hidden_size // heads
    cache = prefix_cache(cfg, 2, p, heads, hd, cases, "prefix")
    full_mask = torch.cat([torch.ones(2, p, dtype=torch.long), mask], dim=1)
    out = model(input_ids=ids, attention_mask=full_mask, past_key_values=cache, output_hidden_states=True)
    record(cases, "prefix", out, input_ids=ids, attention_mask=mask)

    # deep tokens after the embedding layer (positions of the real tokens unchanged)
    at, n = 1, 2
    toks = deep_tokens(2, n, cfg.hidden_size, [0, 1])
    emb = base.embeddings(input_ids=ids)
    x = torch.cat([emb[:, :at], toks[0].expand(2, -1, -1), emb[:, at:]], dim=1)
    dmask = torch.cat([mask[:, :at], torch.ones(2, n, dtype=torch.long), mask[:, at:]], dim=1)
    add = (1.0 - dmask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    hidden = []
    h = x
    for i, layer in enumerate(base.encoder.layer):
        if i in toks and i > 0:
            h = torch.cat([h[:, :at], toks[i].expand(2, -1, -1), h[:, at + n:]], dim=1)
        hidden.append(h.detach().clone())
        h = layer(h, attention_mask=add)
        h = h[0] if isinstance(h, tuple) else h
    hidden.append(h.detach())
    head = model.cls if hasattr(model, "cls") else model.lm_head
    logits = head(h)
    cases["deep.input_ids"] = ids
    cases["deep.attention_mask"] = mask
    cases["deep.deep_at"] = torch.tensor([at], dtype=torch.long)
    for l, t in toks.items():
        cases[f"deep.deep.{l}"] = t
    for l, t in enumerate(hidden):
        cases[f"deep.hidden.{l}"] = t.float().contiguous()
    cases["deep.logits"] = logits.detach().float()
    return cases


def save_cases(out, cases):
    save_file({k: v.detach().clone().contiguous() for k, v in cases.items()}, os.path.join(out, "cases.safetensors"))


def bert():
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, pad_token_id=0,
                     attn_implementation="eager")
    model = randomize(BertForMaskedLM(cfg)).eval()
    model.tie_weights()
    out = save_model(model, "tiny-bert")
    save_cases(out, encoder_cases(model, cfg, 0, roberta=False))


def roberta():
    cfg = RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=70, type_vocab_size=1, pad_token_id=1,
                        attn_implementation="eager")
    model = randomize(RobertaForMaskedLM(cfg)).eval()
    model.tie_weights()
    out = save_model(model, "tiny-roberta")
    save_cases(out, encoder_cases(model, cfg, 1, roberta=True))


def llama():
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, intermediate_size=64, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    model = randomize(LlamaForCausalLM(cfg)).eval()
    out = save_model(model, "tiny-llama")
    save_cases(out, decoder_cases(model, cfg, 2, 8, model.model.embed_tokens))
    return model, cfg


def gemma3():
    # six layers: llama.cpp's Gemma 3 makes every sixth layer global, so the GGUF twin agrees
    cfg = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=6, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=16, intermediate_size=64, max_position_embeddings=128,
                           query_pre_attn_scalar=16, sliding_window=4,
                           rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
                           pad_token_id=0, bos_token_id=2, eos_token_id=1, attn_implementation="eager")
    model = randomize(Gemma3ForCausalLM(cfg)).eval()
    out = save_model(model, "tiny-gemma3")
    save_cases(out, decoder_cases(model, cfg, 1, 16, model.model.embed_tokens))
    return model, cfg


def gpt2():
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, n_inner=64,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    model = randomize(GPT2LMHeadModel(cfg)).eval()
    model.tie_weights()
    out = save_model(model, "tiny-gpt2")
    save_cases(out, decoder_cases(model, cfg, 4, 8, model.transformer.wte, blocks=model.transformer.h))
    write_gpt2_gguf(model, cfg, os.path.join(ROOT, "tiny-gpt2.gguf"))
    # greedy generation: 16 new tokens (or up to EOS) from four prompts, one at a time
    gen = {}
    for i, n in enumerate([7, 4, 11, 5]):
        ids, _ = batch([n], cfg.pad_token_id)
        ids = (ids + i).clamp(max=VOCAB - 1)
        seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                             num_beams=1, pad_token_id=cfg.pad_token_id)
        gen[f"generate.{i}.input_ids"] = ids
        gen[f"generate.{i}.output_ids"] = seq
    save_file(gen, os.path.join(out, "generate.safetensors"))
    beam_cases(model, cfg, out, seq2seq=False)
    return model, cfg


# ---------------------------------------------------------------- beam search

BEAM_CONFIGS = [
    # num_beams, max_new_tokens, no_repeat_ngram_size, min_new_tokens, early_stopping, length_penalty
    (4, 12, 0, 0, False, 1.0),
    (3, 10, 2, 0, False, 0.6),
    (2, 8, 0, 5, True, 1.0),
    (4, 10, 0, 0, "never", 1.5),
    (3, 9, 3, 2, False, -0.5),
]


def beam_cases(model, cfg, out_dir, seq2seq):
    """transformers' beam search on two prompts per setting; besides EOS, a token the model
    likes (the third of its greedy output) ends a beam, so that beams do finish early."""
    cases = {}
    prompts = [batch([n], cfg.pad_token_id)[0] for n in (6, 9)]
    start = torch.tensor([[cfg.decoder_start_token_id]]) if seq2seq else None
    kwargs = lambda: {"decoder_input_ids": start} if seq2seq else {}
    greedy = model.generate(input_ids=prompts[0], attention_mask=torch.ones_like(prompts[0]), max_new_tokens=4,
                            do_sample=False, num_beams=1, pad_token_id=cfg.pad_token_id, **kwargs())
    stop = int(greedy[0, -2])
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else cfg.eos_token_id[0]
    cases["beam.stop_token"] = torch.tensor([stop])
    for c, (beams, max_new, no_repeat, min_new, early, lp) in enumerate(BEAM_CONFIGS):
        cases[f"beam.{c}.config"] = torch.tensor([beams, max_new, no_repeat, min_new,
                                                  {False: 0, True: 1, "never": 2}[early]])
        cases[f"beam.{c}.length_penalty"] = torch.tensor([lp])
        for i, ids in enumerate(prompts):
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                 num_beams=beams, do_sample=False, no_repeat_ngram_size=no_repeat,
                                 min_new_tokens=min_new, early_stopping=early, length_penalty=lp,
                                 eos_token_id=[eos, stop], pad_token_id=cfg.pad_token_id,
                                 forced_bos_token_id=None, forced_eos_token_id=None, **kwargs())
            cases[f"beam.{c}.{i}.input_ids"] = ids.clone()
            cases[f"beam.{c}.{i}.output_ids"] = seq
    save_file(cases, os.path.join(out_dir, "beams.safetensors"))


# ---------------------------------------------------------------- BART (encoder-decoder)

# Prefixes transformers has no argument for (encoder self-attention, cross-attention) are put
# where Li & Liang put them: before the keys and values each attention computes, attended by
# every query (a masked slot adds -inf). BART's attention calls this module-level function, so
# wrapping it reaches every site; decoder self-attention prefixes go through `past_key_values`
# as PEFT passes them, so their positions shift as transformers shifts them.
PREFIXES = {}
_eager = modeling_bart.eager_attention_forward


def _prefixed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    extra = PREFIXES.get(id(module))
    if extra is not None:
        k, v, valid, _ = extra
        b, t, s = query.shape[0], query.shape[2], key.shape[2]
        key = torch.cat([k.expand(b, -1, -1, -1), key], dim=2)
        value = torch.cat([v.expand(b, -1, -1, -1), value], dim=2)
        if attention_mask is None:
            attention_mask = torch.zeros(b, 1, t, s)
        attention_mask = attention_mask.expand(b, 1, t, s)
        pre = torch.zeros(b, 1, t, k.shape[2])
        pre[(valid == 0)[:, None, None, :].expand(b, 1, t, k.shape[2])] = torch.finfo(torch.float32).min
        attention_mask = torch.cat([pre, attention_mask], dim=-1)
    return _eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


modeling_bart.eager_attention_forward = _prefixed_attention

# T5 adds a relative position bias to the scores; a prefix's columns get what the prefix's
# entry in PREFIXES says (the encoder's: the bias of keys at positions 0..p for queries that
# follow them, as transformers gives `past_key_values`; cross-attention's: none).
_t5_eager = modeling_t5.eager_attention_forward


def _t5_prefixed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                           position_bias=None, **kwargs):
    extra = PREFIXES.get(id(module))
    if extra is not None:
        k, v, valid, bias = extra
        b, h, t, s = query.shape[0], query.shape[1], query.shape[2], key.shape[2]
        p = k.shape[2]
        key = torch.cat([k.expand(b, -1, -1, -1), key], dim=2)
        value = torch.cat([v.expand(b, -1, -1, -1), value], dim=2)
        if position_bias is None:
            position_bias = torch.zeros(1, h, t, s)
        pre_bias = bias if bias is not None else torch.zeros(1, h, t, p)
        position_bias = torch.cat([pre_bias.expand(b, h, t, p), position_bias.expand(b, h, t, s)], dim=-1)
        if attention_mask is None:
            attention_mask = torch.zeros(b, 1, t, s)
        attention_mask = attention_mask.expand(b, 1, t, s)
        pre = torch.zeros(b, 1, t, p)
        pre[(valid == 0)[:, None, None, :].expand(b, 1, t, p)] = torch.finfo(torch.float32).min
        attention_mask = torch.cat([pre, attention_mask], dim=-1)
    return _t5_eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                     position_bias=position_bias, **kwargs)


modeling_t5.eager_attention_forward = _t5_prefixed_attention


def random_prefix(layers, b, p, heads, head_dim, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, heads, p, head_dim, generator=g), torch.randn(b, heads, p, head_dim, generator=g))
            for _ in range(layers)]


HEAD = {}


def record_seq2seq(cases, case, out, **inputs):
    for k, v in inputs.items():
        cases[f"{case}.{k}"] = v.contiguous()
    for l, h in enumerate(out.encoder_hidden_states):
        cases[f"{case}.encoder_hidden.{l}"] = h.detach().float().contiguous()
    for l, h in enumerate(out.decoder_hidden_states):
        cases[f"{case}.hidden.{l}"] = h.detach().float().contiguous()
    logits = out.logits if "head" not in HEAD else out.decoder_hidden_states[-1] @ HEAD["head"].T
    cases[f"{case}.logits"] = logits.detach().float().contiguous()


def seq2seq_cases(model, cfg, stacks, head=None):
    """The encoder-decoder cases. `stacks` = (encoder, decoder, shared embedding, encoder
    layers' self-attentions, decoder layers' self- and cross-attentions, the encoder's
    position bias of a prefix or None); `head` replaces the LM head (T5 v1.1 untied)."""
    encoder, decoder, shared, enc_attn, dec_cross, prefix_bias = stacks
    cases = {}
    ids, mask = batch([9, 6], cfg.pad_token_id)
    dids, dmask = batch([5, 3], cfg.pad_token_id)
    dids[:, 0] = cfg.decoder_start_token_id
    common = dict(decoder_input_ids=dids, decoder_attention_mask=dmask, output_hidden_states=True)
    record_seq2seq(cases, "plain", model(input_ids=ids, attention_mask=mask, **common),
                   input_ids=ids, attention_mask=mask, decoder_input_ids=dids, decoder_attention_mask=dmask)

    # soft vectors in place of encoder tokens (inputs_embeds carry the embedding scale)
    g = torch.Generator().manual_seed(3)
    emb = shared(ids).detach().clone()
    soft = torch.randn(1, 2, cfg.d_model, generator=g)
    emb[:, 0], emb[:, 1] = soft[0, 0], soft[0, 1]
    record_seq2seq(cases, "soft", model(inputs_embeds=emb, attention_mask=mask, **common),
                   input_ids=ids, attention_mask=mask, decoder_input_ids=dids, decoder_attention_mask=dmask,
                   soft_values=soft, soft_positions=torch.tensor([[0, 1]] * 2, dtype=torch.long))

    h, hd = cfg.num_attention_heads, getattr(cfg, "d_kv", cfg.d_model // cfg.num_attention_heads)
    enc_layers, dec_layers = len(enc_attn), len(dec_cross)
    enc_p, dec_p, cross_p = 3, 2, 4
    encoder_prefix = random_prefix(enc_layers, 1, enc_p, h, hd, 21)
    decoder_prefix = random_prefix(dec_layers, 2, dec_p, h, hd, 22)
    cross_prefix = random_prefix(dec_layers, 1, cross_p, h, hd, 23)
    # the second row leaves the last cross-attention prefix slot out
    cross_valid = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])

    def run(case, enc=False, dec=False, cross=False):
        PREFIXES.clear()
        extra = {}
        if enc:
            bias = prefix_bias(ids.shape[1], enc_p) if prefix_bias else None
            for l, attn in enumerate(enc_attn):
                PREFIXES[id(attn)] = (*encoder_prefix[l], torch.ones(2, enc_p), bias)
                extra[f"encoder_prefix_key.{l}"], extra[f"encoder_prefix_value.{l}"] = encoder_prefix[l]
        if cross:
            for l, attn in enumerate(dec_cross):
                PREFIXES[id(attn)] = (*cross_prefix[l], cross_valid, None)
                extra[f"cross_prefix_key.{l}"], extra[f"cross_prefix_value.{l}"] = cross_prefix[l]
            extra["cross_prefix_mask"] = cross_valid
        kwargs = dict(common)
        if dec:
            self_cache = DynamicCache()
            for l in range(dec_layers):
                self_cache.update(*decoder_prefix[l], l)
                extra[f"decoder_prefix_key.{l}"], extra[f"decoder_prefix_value.{l}"] = decoder_prefix[l]
            kwargs["past_key_values"] = EncoderDecoderCache(self_cache, DynamicCache())
            kwargs["decoder_attention_mask"] = torch.cat([torch.ones(2, dec_p, dtype=torch.long), dmask], dim=1)
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
        PREFIXES.clear()
        record_seq2seq(cases, case, out, input_ids=ids, attention_mask=mask, decoder_input_ids=dids,
                       decoder_attention_mask=dmask, **extra)

    run("encoder_prefix", enc=True)
    run("decoder_prefix", dec=True)
    run("cross_prefix", cross=True)
    run("all_prefixes", enc=True, dec=True, cross=True)

    # deep tokens in the encoder: inserted after the embedding at index 1, overwritten before
    # layer 1 (positions count over the longer sequence, as transformers numbers inputs_embeds)
    at, n = 1, 2
    toks = deep_tokens(2, n, cfg.d_model, [0, 1])
    emb = shared(ids).detach()
    x = torch.cat([emb[:, :at], toks[0].expand(2, -1, -1), emb[:, at:]], dim=1)
    xmask = torch.cat([mask[:, :at], torch.ones(2, n, dtype=torch.long), mask[:, at:]], dim=1)

    def pre_hook(idx):
        def hook(module, args, kwargs):
            if idx == 0:
                return None
            hs = args[0] if args else kwargs["hidden_states"]
            hs = torch.cat([hs[:, :at], toks[idx].expand(2, -1, -1), hs[:, at + n:]], dim=1)
            if args:
                return (hs,) + tuple(args[1:]), kwargs
            kwargs["hidden_states"] = hs
            return args, kwargs
        return hook

    handles = [layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True)
               for i, layer in enumerate(encoder)]
    out = model(inputs_embeds=x, attention_mask=xmask, **common)
    for hnd in handles:
        hnd.remove()
    cases["deep.input_ids"] = ids
    cases["deep.attention_mask"] = mask
    cases["deep.decoder_input_ids"] = dids
    cases["deep.decoder_attention_mask"] = dmask
    cases["deep.deep_at"] = torch.tensor([at], dtype=torch.long)
    for l, t in toks.items():
        cases[f"deep.deep.{l}"] = t
    for l, hs in enumerate(out.decoder_hidden_states):
        cases[f"deep.hidden.{l}"] = hs.float().contiguous()
    cases[f"deep.encoder_hidden.{enc_layers}"] = out.encoder_last_hidden_state.float().contiguous()
    cases["deep.logits"] = (out.logits if head is None else out.decoder_hidden_states[-1] @ head.T).detach().float()
    cases["num_parameters"] = torch.tensor([model.num_parameters() + (head.numel() if head is not None else 0)],
                                           dtype=torch.long)
    if head is not None:
        return cases

    # greedy generation: 16 new tokens (or up to EOS) from four sources, one at a time, each
    # decoder started with the start token and two tokens of its own (from the start token alone
    # this random model repeats one token whatever the source)
    for i, n in enumerate([7, 4, 11, 5]):
        src, _ = batch([n], cfg.pad_token_id)
        src = (src + i).clamp(max=VOCAB - 1)
        start = torch.tensor([[cfg.decoder_start_token_id, 10 + 7 * i, 40 - 5 * i]])
        seq = model.generate(input_ids=src, attention_mask=torch.ones_like(src), decoder_input_ids=start,
                             max_new_tokens=16, do_sample=False, num_beams=1, no_repeat_ngram_size=0,
                             min_new_tokens=0, forced_bos_token_id=None, forced_eos_token_id=None)
        cases[f"generate.{i}.input_ids"] = src
        cases[f"generate.{i}.decoder_input_ids"] = start
        cases[f"generate.{i}.output_ids"] = seq
    return cases


def bart():
    cfg = BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                     activation_function="gelu", scale_embedding=True, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
                     attn_implementation="eager")
    model = randomize(BartForConditionalGeneration(cfg)).eval()
    g = torch.Generator().manual_seed(5)
    model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=g) * 0.1)
    model.tie_weights()
    out = save_model(model, "tiny-bart")
    layers = (model.model.encoder.layers, model.model.decoder.layers)
    stacks = (layers[0], layers[1], model.model.shared, [l.self_attn for l in layers[0]],
              [l.encoder_attn for l in layers[1]], None)
    save_cases(out, seq2seq_cases(model, cfg, stacks))
    beam_cases(model, cfg, out, seq2seq=True)


def t5(name, feed_forward_proj, untied_head):
    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, relative_attention_max_distance=20,
                   feed_forward_proj=feed_forward_proj, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                   attn_implementation="eager")
    model = randomize(T5ForConditionalGeneration(cfg)).eval()
    # the relative bias matters at least as much as the scores
    model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.mul_(10)
    model.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.mul_(10)
    out = save_model(model, name)
    head = None
    if untied_head:
        # transformers 5 always ties T5's head; checkpoints of v1.1 (and Flan) carry their own,
        # with `tie_word_embeddings: false` and no output scaling: write one, and compute the
        # logits from the decoder's last hidden state (which the head does not change)
        g = torch.Generator().manual_seed(9)
        head = torch.randn(VOCAB, cfg.d_model, generator=g) * 0.3
        from safetensors.torch import load_file
        weights = load_file(os.path.join(out, "model.safetensors"))
        weights["lm_head.weight"] = head.clone()
        save_file(weights, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        config = json.load(open(os.path.join(out, "config.json")))
        config["tie_word_embeddings"] = False
        config.pop("scale_decoder_outputs", None)
        json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
        HEAD["head"] = head
    enc_attn = [b.layer[0].SelfAttention for b in model.encoder.block]
    bias_module = enc_attn[0]

    def prefix_bias(t, p):
        # queries at positions p..p+t against prefix keys at 0..p
        return bias_module.compute_bias(p + t, p + t)[:, :, p:, :p]

    stacks = (model.encoder.block, model.decoder.block, model.shared, enc_attn,
              [b.layer[1].EncDecAttention for b in model.decoder.block], prefix_bias)
    cases = seq2seq_cases(model, cfg, stacks, head)
    HEAD.clear()
    save_cases(out, cases)
    if head is None:
        beam_cases(model, cfg, out, seq2seq=True)


# ---------------------------------------------------------------- GGUF (as llama.cpp writes it)

def permute_for_ggml(w, n_head):
    """llama.cpp stores Q/K rows interleaved for its RoPE; HF uses rotate-half."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, cfg, arch, path, quantize):
    import gguf
    w = gguf.GGUFWriter(path, arch)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    if arch == "llama":
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
        w.add_rope_dimension_count(cfg.head_dim)
        w.add_tokenizer_model("gpt2")
        w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
        w.add_token_merges([])
    else:
        w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        w.add_sliding_window(cfg.sliding_window)
        w.add_tokenizer_model("llama")
        w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
        w.add_token_scores([0.0] * cfg.vocab_size)
        w.add_token_types([1] * cfg.vocab_size)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else cfg.eos_token_id[0])

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm"}
    if arch == "llama":
        per_layer["post_attention_layernorm"] = "ffn_norm"
    else:
        per_layer.update({"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                          "post_feedforward_layernorm": "post_ffw_norm", "self_attn.q_norm": "attn_q_norm",
                          "self_attn.k_norm": "attn_k_norm"})
    for i in range(cfg.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for hf, data in sd.items():
        if hf not in names or (hf == "lm_head.weight" and cfg.tie_word_embeddings):
            continue
        gg = names[hf]
        if arch == "llama" and ".attn_q." in gg:
            data = permute_for_ggml(data, cfg.num_attention_heads)
        if arch == "llama" and ".attn_k." in gg:
            data = permute_for_ggml(data, cfg.num_key_value_heads)
        if arch == "gemma3" and "norm" in gg:
            data = data + 1.0
        qtype = quantize(gg, data)
        if qtype is None:
            w.add_tensor(gg, np.ascontiguousarray(data, dtype=np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(gg, np.ascontiguousarray(data, dtype=np.float16))
        else:
            q = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)
            w.add_tensor(gg, q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gpt2_gguf(model, cfg, path):
    """GPT-2 as llama.cpp's converter writes it: its own key names, the Conv1D weights
    transposed to [out, in], no attention-mask buffers, the head tied (no output.weight)."""
    import gguf
    w = gguf.GGUFWriter(path, "gpt2")
    w.add_context_length(cfg.n_positions)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_inner)
    w.add_head_count(cfg.n_head)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_token_merges([])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    names = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
             "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias"}
    per_layer = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
                 "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for i in range(cfg.n_layer):
        for hf, gg in per_layer.items():
            for part in ["weight", "bias"]:
                names[f"transformer.h.{i}.{hf}.{part}"] = f"blk.{i}.{gg}.{part}"
    for hf, data in model.state_dict().items():
        if hf not in names:
            continue
        data = data.detach().float().numpy()
        if data.ndim == 2 and hf.startswith("transformer.h."):
            data = data.T
        w.add_tensor(names[hf], np.ascontiguousarray(data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_fixtures(llama_model, llama_cfg, gemma_model, gemma_cfg):
    import gguf
    Q = gguf.GGMLQuantizationType

    def llama_quant(name, data):
        # exercise the dequantizers along the way: F16 and Q8_0 matrices, F32 norms
        if data.ndim == 1:
            return None
        if "ffn_up" in name:
            return Q.Q8_0
        if "attn_v" in name:
            return Q.F16
        return None

    path = os.path.join(ROOT, "tiny-llama.gguf")
    write_gguf(llama_model, llama_cfg, "llama", path, llama_quant)
    # the reference: transformers loading the same GGUF (it dequantizes and un-permutes)
    ref = transformers.AutoModelForCausalLM.from_pretrained(ROOT, gguf_file="tiny-llama.gguf",
                                                            attn_implementation="eager", dtype=torch.float32).eval()
    ids, mask = batch([9, 6], 0)
    out = ref(input_ids=ids, attention_mask=mask)
    save_file({"plain.input_ids": ids, "plain.attention_mask": mask, "plain.logits": out.logits.detach().float().contiguous()},
              os.path.join(ROOT, "tiny-llama-gguf-cases.safetensors"))
    write_gguf(gemma_model, gemma_cfg, "gemma3", os.path.join(ROOT, "tiny-gemma3.gguf"), lambda n, d: None)


if __name__ == "__main__":
    import sys
    os.makedirs(ROOT, exist_ok=True)
    torch.set_grad_enabled(False)
    only = set(sys.argv[1:])
    if not only or "bert" in only:
        bert()
    if not only or "roberta" in only:
        roberta()
    if not only or "gpt2" in only:
        gpt2()
    if not only or "bart" in only:
        bart()
    if not only or "t5" in only:
        t5("tiny-t5", "relu", untied_head=False)
        t5("tiny-t5-v1_1", "gated-gelu", untied_head=True)
    if not only or only & {"llama", "gemma3", "gguf"}:
        lm, lcfg = llama()
        gm, gcfg = gemma3()
        gguf_fixtures(lm, lcfg, gm, gcfg)
    print("fixtures written to", os.path.abspath(ROOT))
