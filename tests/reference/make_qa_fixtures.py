#!/usr/bin/env python3
"""Writes crates/promptune/tests/fixtures/data/squad_windows_hf.json: how transformers' fast
tokenizer splits the questions of ``squad_dev_excerpt.json`` into windows, for the windowing and
labelling tests of ``task::extractive_qa`` (``tests/task_heads.rs``); and
``conll_alignment_hf.json``: run_ner's first-sub-token labels of ``conll_small.txt`` for
``task::tagging``.

Run with the reference venv (transformers, tokenizers):

    python tests/reference/make_qa_fixtures.py

It uses the committed ``bert-base-uncased`` tokenizer fixture and does exactly what
``examples/pytorch/question-answering/run_qa.py`` does in ``prepare_train_features``: question
left-stripped, ``tokenizer(question, context, truncation="only_second", max_length=M,
stride=S, return_overflowing_tokens=True, return_offsets_mapping=True)`` (no padding), and
start/end positions of the first answer per window ([CLS] index when the answer is not inside
the window). Small ``max_length`` values force several windows per context.

One deliberate difference from run_qa's loop: when the answer starts at the last context token
of a window, run_qa's ``while offsets[token_start_index][0] <= start_char`` walks past the
context into the final [SEP] (offset (0, 0)) and labels a start after the end (case max_len 64,
question 5733a5f54776f41900660f48, window 2: run_qa gives (63, 62)); here, as in promptune, the
walk stops at the last context token (62, 62).
"""

import json
import pathlib

from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "crates/promptune/tests/fixtures"
SETTINGS = [(384, 128), (64, 16), (48, 24)]


def labels(tok, enc, i, answer):
    """run_qa's prepare_train_features for window i (without padding)."""
    input_ids = enc["input_ids"][i]
    offsets = enc["offset_mapping"][i]
    cls_index = input_ids.index(tok.cls_token_id)
    seq = enc.sequence_ids(i)
    start_char = answer["answer_start"]
    end_char = start_char + len(answer["text"])
    ts = 0
    while seq[ts] != 1:
        ts += 1
    te = len(input_ids) - 1
    while seq[te] != 1:
        te -= 1
    if not (offsets[ts][0] <= start_char and offsets[te][1] >= end_char):
        return cls_index, cls_index
    while ts < len(offsets) and seq[ts] == 1 and offsets[ts][0] <= start_char:
        ts += 1
    while seq[te] == 1 and offsets[te][1] >= end_char:
        te -= 1
    return ts - 1, te + 1


def main():
    tok = AutoTokenizer.from_pretrained(FIX / "tokenizers/bert-base-uncased")
    assert tok.is_fast
    squad = json.loads((FIX / "data/squad_dev_excerpt.json").read_text())
    cases = []
    for max_len, stride in SETTINGS:
        examples = []
        for article in squad["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    enc = tok(
                        qa["question"].lstrip(),
                        para["context"],
                        truncation="only_second",
                        max_length=max_len,
                        stride=stride,
                        return_overflowing_tokens=True,
                        return_offsets_mapping=True,
                    )
                    windows = []
                    for i in range(len(enc["input_ids"])):
                        seq = enc.sequence_ids(i)
                        start, end = labels(tok, enc, i, qa["answers"][0])
                        windows.append(
                            {
                                "ids": enc["input_ids"][i],
                                "type_ids": enc["token_type_ids"][i],
                                "context_offsets": [
                                    list(o) if s == 1 else None
                                    for o, s in zip(enc["offset_mapping"][i], seq)
                                ],
                                "start": start,
                                "end": end,
                            }
                        )
                    examples.append({"id": qa["id"], "windows": windows})
        cases.append({"max_len": max_len, "doc_stride": stride, "examples": examples})
    out = FIX / "data/squad_windows_hf.json"
    out.write_text(json.dumps({"tokenizer": "bert-base-uncased", "cases": cases}) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    write_ner(tok)


def read_conll(path):
    """Sentences of (tokens, NER tags) of a CoNLL file (IOB2 already)."""
    sentences, words, tags = [], [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        cols = line.split()
        words.append(cols[0])
        tags.append(cols[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def write_ner(tok):
    """run_ner's tokenize_and_align_labels (label_all_tokens=False), tag ids = index in the
    tag set (O first, then the others sorted, as promptune's tag_set)."""
    sentences = read_conll(FIX / "data/conll_small.txt")
    tag_set = ["O"] + sorted({t for _, ts in sentences for t in ts} - {"O"})
    cases = []
    for max_len in [128, 8]:
        out = []
        for words, tags in sentences:
            enc = tok(words, is_split_into_words=True, truncation=True, max_length=max_len)
            labels, previous = [], None
            for w in enc.word_ids():
                if w is None:
                    labels.append(-100)
                elif w != previous:
                    labels.append(tag_set.index(tags[w]))
                else:
                    labels.append(-100)
                previous = w
            out.append({"words": words, "ids": enc["input_ids"], "word_ids": enc.word_ids(), "labels": labels})
        cases.append({"max_len": max_len, "sentences": out})
    path = FIX / "data/conll_alignment_hf.json"
    path.write_text(json.dumps({"tags": tag_set, "cases": cases}) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
