"""Tokenizer fixtures of the encoder-decoder families.

T5: the real `spiece.model` (Apache-2.0, from google-research/prompt-tuning's test data, copied
from ../shared/data/tokenizer-t5) and the ids transformers' T5TokenizerFast gives for 50 varied
sentences, with and without special tokens, and the decoded text.

BART from `vocab.json` + `merges.txt`: the committed GPT-2 tokenizer.json's vocabulary with
BART's five specials appended (`<s>`, `<pad>`, `</s>`, `<unk>`, `<mask>`) and its merges, as
the two files; the ids transformers' BartTokenizerFast gives for the same 50 sentences
(`tokenizers/bart-bpe-expected.json`; the test rebuilds the two files the same way).

Run with the reference venv plus `sentencepiece` and `protobuf` (transformers needs them to
convert spiece.model):
    python tests/reference/make_t5_tokenizer_fixture.py [SHARED_DIR]
Writes crates/promptune/tests/fixtures/tokenizers/t5/{spiece.model, LICENSE, PROVENANCE.tsv,
expected.json} and tokenizers/bart-bpe-expected.json.
"""
import json
import os
import shutil
import sys
import tempfile

from transformers import BartTokenizerFast, T5TokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared"),
                   "data", "tokenizer-t5")
OUT = os.path.join(HERE, "..", "..", "crates", "promptune", "tests", "fixtures", "tokenizers", "t5")

SENTENCES = [
    "Hello world",
    "Hello, world! How are you?",
    "translate English to German: The house is wonderful.",
    "summarize: studies have shown that owning a dog is good for you",
    "The <extra_id_0> walks in <extra_id_1> park",
    "cola sentence: The course is jumping well.",
    "  leading and trailing spaces  ",
    "multiple     spaces    inside",
    "tabs\tand\nnewlines\r\nmixed",
    "Numbers: 3.14159, 2,718 and 1e-10; 42% of $100.",
    "Dates like 2026-12-07 and times like 16:45:00",
    "email@example.com and https://example.org/path?q=1&r=2",
    "Café, naïve, résumé, coöperate, façade",
    "Ünïcödé çhàrâctërs everywhere: ÀÉÎÕÜ",
    "Straße, Maß, größer",
    "Full-width: ＨＥＬＬＯ ｗｏｒｌｄ １２３",
    "Ligatures: ﬁ ﬂ ﬀ and ½ ¼ ²",
    "Emoji: 😀 🚀 👍🏽 and ❤️",
    "中文文本测试",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 텍스트",
    "Русский текст с пунктуацией!",
    "Ελληνικά κείμενα",
    "עברית וערבית: مرحبا بالعالم",
    "Hindi: नमस्ते दुनिया",
    "def foo(x):\n    return x ** 2  # comment",
    "<html><body>Markup &amp; entities</body></html>",
    "Quotes: “curly” ‘single’ «guillemets» „low“",
    "Dashes – and — and ‐ and ‒",
    "Ellipsis… and bullets • ◦",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "lowercase sentence without punctuation",
    "MiXeD CaSe WoRdS",
    "Hyphen-ated and under_scored and camelCase",
    "a",
    "?!",
    "...",
    "The quick brown fox jumps over the lazy dog.",
    "question: What is the capital of France? context: Paris is the capital of France.",
    "stsb sentence1: The cat sat. sentence2: A cat was sitting.",
    "mnli hypothesis: The man is asleep. premise: A man is running.",
    "supercalifragilisticexpialidocious",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is long",
    "C++, C#, F# and .NET",
    "x = y + z * (a - b) / c",
    "Zero\u200bwidth\u200bspace and non\u00a0breaking",
    "Accents composed: e\u0301 versus é",
    "Repeated!!!!!! punctuation??????",
    "</s> and <pad> and <unk> written out",
    "The end.",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(os.path.join(SRC, "spiece.model"), os.path.join(OUT, "spiece.model"))
    shutil.copy(os.path.join(SRC, "LICENSE.repo"), os.path.join(OUT, "LICENSE"))
    shutil.copy(os.path.join(SRC, "PROVENANCE.tsv"), os.path.join(OUT, "PROVENANCE.tsv"))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(SRC, "spiece.model"), os.path.join(tmp, "spiece.model"))
        tok = T5TokenizerFast.from_pretrained(tmp)
    assert len(SENTENCES) == 50
    cases = []
    for text in SENTENCES:
        ids = tok(text).input_ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_without_specials": tok(text, add_special_tokens=False).input_ids,
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    doc = {"vocab_size": len(tok), "cases": cases}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    print("wrote", os.path.abspath(OUT))
    bart()


def bart():
    gpt2 = json.load(open(os.path.join(OUT, "..", "gpt2", "tokenizer.json")))
    vocab = dict(gpt2["model"]["vocab"])
    for special in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]:
        vocab[special] = len(vocab)
    merges = [m if isinstance(m, str) else " ".join(m) for m in gpt2["model"]["merges"]]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "vocab.json"), "w") as f:
            json.dump(vocab, f)
        with open(os.path.join(tmp, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        tok = BartTokenizerFast.from_pretrained(tmp)
        cases = [{"text": t, "ids": tok(t).input_ids,
                  "decoded_skip_special": tok.decode(tok(t).input_ids, skip_special_tokens=True)}
                 for t in SENTENCES]
    out = os.path.join(OUT, "..", "bart-bpe-expected.json")
    with open(out, "w") as f:
        json.dump({"vocab_size": len(tok), "cases": cases}, f, ensure_ascii=False, indent=1)
    print("wrote", os.path.abspath(out))


if __name__ == "__main__":
    main()
