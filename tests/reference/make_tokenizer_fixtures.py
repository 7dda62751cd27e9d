#!/usr/bin/env python3
"""Writes the tokenizer test fixtures under crates/promptune/tests/fixtures/tokenizers/.

Run with the reference venv (see shared/reference/setup.sh):

    MODELS_DIR=~/.cache/shared-models python tests/reference/make_tokenizer_fixtures.py

MODELS_DIR is the output folder of shared/models/fetch.sh. Outputs:

* ``smollm2-tokenizer.gguf``: the tokenizer metadata of SmolLM2-135M-Instruct (Apache-2.0) and its
  llama.* hyperparameters, without tensors (and without the chat template).
* (no file) SmolLM2's vocabulary with ``tokenizer.ggml.pre`` patched to ``llama3``, ``gpt-4o`` and
  ``tekken``, to check the split regexes transformers substitutes for those.
* ``spm-tiny.gguf``: a made-up sentencepiece-style (``tokenizer.ggml.model = llama``) vocabulary
  learned here by a few hundred BPE merges over a small English text, with byte tokens, a control
  token and a user-defined token.
* ``bert-base-uncased/`` and ``gpt2/``: the tokenizer files from shared/data (Apache-2.0 / MIT);
  the GPT-2 tokenizer.json less one dangling merge (see ``drop_dangling_merges``).
* ``expected.json``: for each tokenizer and each test text, the ids transformers produces
  (``AutoTokenizer.from_pretrained(dir, gguf_file=...)`` for GGUFs, ``from_pretrained(dir)`` for
  the tokenizer.json folders) and the backend's decoding of them, with and without special tokens.
  Gemma 3's ids are computed from the real file; its vocabulary (Gemma terms) is not copied.
"""

import collections
import json
import os
import pathlib
import shutil

import numpy as np
import gguf
from gguf import GGUFValueType as V
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/promptune/tests/fixtures/tokenizers"
SHARED = ROOT.parent / "shared"
if not SHARED.is_dir():
    SHARED = pathlib.Path("/work/shared")

TEXTS = [
    "Hello world",
    "Hello, world! How are you?",
    " leading space",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple   spaces\tand\ttabs\t\tdouble",
    "line one\nline two\n\nline four\r\nwindows\n",
    "\n\n\n",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1,000,000 2024-06-01",
    "Café naïve résumé façade Ångström",
    "日本語のテキストと中文文本，还有标点。",
    "Emoji 🤗🚀👍🏽 and a family 👨‍👩‍👧!",
    "Ünïcödé ∑∫√ ≠ ≤ — “quotes” «guillemets» ‘single’ …",
    "I'm can't won't they'll we've he'd SHE'S",
    "def foo(x):\n    return x ** 2  # comment\n",
    "<html><body>Tags &amp; entities</body></html>",
    "",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "UPPER lower MiXeD camelCase snake_case",
    "rare: 𓀀 and a non\u00a0breaking space",
    "URL https://example.com/path?q=1&r=2#frag email foo@bar.org",
    " ",
    "   ",
    "Привет, мир! مرحبا بالعالم नमस्ते दुनिया 안녕하세요 세계 Γειά σου κόσμε",
    "zero\u200bwidth, soft\u00adhyphen, combining e\u0301 vs \u00e9, fullwidth ＡＢＣ１２３",
    "!!!???... ---- ==== ____ ~~~~ ```code``` $$$ %%% @@@",
    "literal pieces: <unk> <0x41> \u2581word \u2581\u2581 <s> </s> [UNK] <|im_end|",
    "Mixed\n  indented\n\tTabbed\n\n\n\nFour newlines then text   \n",
    "A longer sentence that goes on and on, with commas, semicolons; colons: and (parentheses) "
    "so that the merges of common English words get exercised many times over in one text.",
]

SPECIAL_TEXTS = {
    "smollm2": ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "x<|endoftext|>y"],
    "gemma3": ["<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<bos>text<eos>", "a\n\n\nb"],
    "spm-tiny": ["<ctrl>the<tool> thing", "the <tool>"],
    "bert-base-uncased": ["[CLS] hello [SEP] [MASK] world", "[unused1] x"],
    "gpt2": ["<|endoftext|>Hello<|endoftext|>"],
}

CORPUS = """
The quick brown fox jumps over the lazy dog. Hello world, hello there! This is a small corpus used to
learn a tiny vocabulary for tests. The tokenizer splits text into pieces, and the pieces are merged
into longer tokens when they appear often. Numbers like 1 2 3 and 10 20 30 appear too. The thing is
that the test only needs a handful of merges to exercise the code paths: merging, byte fallback for
characters outside the vocabulary, and the handling of spaces at the start of a text. There are
leading spaces, trailing spaces and lines. These tests check that the ids are the same everywhere.
"""


def copy_tokenizer_gguf(src, dst):
    """A GGUF with src's tokenizer.* and <arch>.* metadata and no tensors."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch=arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name == "tokenizer.chat_template":
            continue
        if not (name.startswith("tokenizer.") or name.startswith(arch + ".") or name in ("general.name", "general.license")):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == V.ARRAY else None
        w.add_key_value(name, field.contents(), vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def learn_spm_vocab(n_merges=300):
    """BPE merges over '▁'-prefixed words; returns (chars, merged tokens in merge order)."""
    words = collections.Counter("\u2581" + w for w in CORPUS.split())
    seqs = {w: list(w) for w in words}
    chars = sorted({c for w in words for c in w})
    merged = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        tok = a + b
        if tok not in merged:
            merged.append(tok)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(tok)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return chars, merged


def write_spm_tiny(dst):
    chars, merged = learn_spm_vocab()
    tokens, scores, types = [], [], []

    def add(t, s, ty):
        tokens.append(t)
        scores.append(float(s))
        types.append(ty)

    add("<unk>", 0, 2)
    add("<s>", 0, 3)
    add("</s>", 0, 3)
    for b in range(256):
        add(f"<0x{b:02X}>", 0, 6)
    for i, t in enumerate(merged):
        add(t, -i, 1)
    for i, c in enumerate(chars):
        if c not in tokens:
            add(c, -1000 - i, 1)
    add("<ctrl>", 0, 3)
    add("<tool>", 0, 4)

    w = gguf.GGUFWriter(str(dst), arch="llama")
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.context_length", 64)
    w.add_uint32("llama.embedding_length", 8)
    w.add_uint32("llama.feed_forward_length", 16)
    w.add_uint32("llama.attention.head_count", 2)
    w.add_uint32("llama.attention.head_count_kv", 2)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("llama.vocab_size", len(tokens))
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_key_value("tokenizer.ggml.scores", scores, V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("tokenizer.ggml.token_type", types, V.ARRAY, sub_type=V.INT32)
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0)
    # No add_bos_token key: transformers (and llama.cpp) then add BOS for sentencepiece vocabularies.
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def drop_dangling_merges(path):
    """The shared GPT-2 tokenizer.json has one merge ("ĠCla ude") whose result is missing from its
    vocabulary (id 40559 is spelled "ĠLLMProvider" there), which makes both the Python and the
    Rust `tokenizers` refuse the file. Drop such merges from the fixture copy; only words
    containing "Claude" tokenize differently from the original GPT-2."""
    j = json.loads(path.read_text(encoding="utf-8"))
    vocab, merges = j["model"]["vocab"], j["model"]["merges"]
    keep = [m for m in merges if "".join(m.split(" ") if isinstance(m, str) else m) in vocab]
    if len(keep) != len(merges):
        print(f"{path}: dropped {len(merges) - len(keep)} merge(s) whose result is not in the vocabulary")
        j["model"]["merges"] = keep
        path.write_text(json.dumps(j, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


PRE_VARIANTS = ["llama3", "gpt-4o", "tekken"]


def patch_pre(data, pre):
    """data with the 6-byte `tokenizer.ggml.pre` value "smollm" replaced by `pre` (6 bytes)."""
    old = b"tokenizer.ggml.pre" + (8).to_bytes(4, "little") + (6).to_bytes(8, "little") + b"smollm"
    assert len(pre) == 6 and data.count(old) == 1
    return data.replace(old, old[:-6] + pre.encode())


def cases(tok, texts):
    out = []
    backend = tok.backend_tokenizer
    for text in texts:
        ids = tok(text)["input_ids"]
        enc = backend.encode(text)
        assert enc.ids == ids, (text, enc.ids, ids)
        out.append({
            "text": text,
            "ids": ids,
            "decoded": backend.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": backend.decode(ids, skip_special_tokens=True),
        })
    return out


def summary(tok):
    j = json.loads(tok.backend_tokenizer.to_str())
    return {
        "vocab_size": tok.backend_tokenizer.get_vocab_size(with_added_tokens=True),
        "added_tokens": [[a["id"], a["special"]] for a in j["added_tokens"]],
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    models_dir = pathlib.Path(os.environ.get("MODELS_DIR", pathlib.Path.home() / ".cache/shared-models"))
    expected = {}
    old = OUT / "expected.json"
    if old.is_file():
        expected = json.loads(old.read_text())

    # SmolLM2: tokenizer-only GGUF copied from the real file; ids from the real file.
    smol = models_dir / "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
    if smol.is_file():
        copy_tokenizer_gguf(smol, OUT / "smollm2-tokenizer.gguf")
        tok = AutoTokenizer.from_pretrained(str(smol.parent), gguf_file=smol.name)
        expected["smollm2"] = {"cases": cases(tok, TEXTS + SPECIAL_TEXTS["smollm2"]), **summary(tok)}
        # The copy must describe the same tokenizer.
        copy = AutoTokenizer.from_pretrained(str(OUT), gguf_file="smollm2-tokenizer.gguf")
        assert cases(copy, TEXTS) == expected["smollm2"]["cases"][: len(TEXTS)]
        # The same vocabulary with other `tokenizer.ggml.pre` values (same length, patched in
        # place; the Rust test patches the committed copy the same way).
        for pre in PRE_VARIANTS:
            variant = OUT / f"smollm2-pre-{pre}.gguf"
            variant.write_bytes(patch_pre((OUT / "smollm2-tokenizer.gguf").read_bytes(), pre))
            try:
                tok = AutoTokenizer.from_pretrained(str(OUT), gguf_file=variant.name)
                expected[f"smollm2-pre-{pre}"] = {"cases": cases(tok, TEXTS), **summary(tok)}
            finally:
                variant.unlink()
    else:
        print(f"{smol} not found: keeping the old SmolLM2 fixtures")

    gemma = models_dir / "gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
    if gemma.is_file():
        tok = AutoTokenizer.from_pretrained(str(gemma.parent), gguf_file=gemma.name)
        expected["gemma3"] = {"cases": cases(tok, TEXTS + SPECIAL_TEXTS["gemma3"]), **summary(tok)}
    else:
        print(f"{gemma} not found: keeping the old Gemma fixtures")

    write_spm_tiny(OUT / "spm-tiny.gguf")
    tok = AutoTokenizer.from_pretrained(str(OUT), gguf_file="spm-tiny.gguf")
    expected["spm-tiny"] = {"cases": cases(tok, TEXTS + SPECIAL_TEXTS["spm-tiny"]), **summary(tok)}

    for name, files in [
        ("bert-base-uncased", ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "PROVENANCE.tsv"]),
        ("gpt2", ["tokenizer.json", "tokenizer_config.json", "PROVENANCE.tsv"]),
    ]:
        src = SHARED / "data" / f"tokenizer-{name}"
        dst = OUT / name
        dst.mkdir(exist_ok=True)
        for f in files:
            shutil.copyfile(src / f, dst / f)
        if name == "gpt2":
            drop_dangling_merges(dst / "tokenizer.json")
        tok = AutoTokenizer.from_pretrained(str(dst))
        expected[name] = {"cases": cases(tok, TEXTS + SPECIAL_TEXTS[name]), **summary(tok)}

    old.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
