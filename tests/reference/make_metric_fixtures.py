#!/usr/bin/env python3
"""Writes the reference values for the NER span metric and the SQuAD metric.

Run with the reference venv plus seqeval (``pip install seqeval``; 1.2.2 was used):

    ~/.cache/ref-venv/bin/python tests/reference/make_metric_fixtures.py

Outputs, under crates/promptune/tests/fixtures/data/:

* ``squad_dev_excerpt.json``: 10 questions of 4 articles of the SQuAD v1.1 dev set
  (CC BY-SA 4.0), read from ../shared/data/squad-v1.1-dev/dev-v1.1.json. Only needed when
  regenerating it: the other output is computed from the committed copy.
* ``metrics_expected.json``:
  - ``ner``: for each case, gold and predicted tag sequences (lists of sentences), the entities
    ``seqeval.metrics.sequence_labeling.get_entities`` finds in every sentence, the micro
    precision / recall / F1 of ``seqeval.metrics`` (default mode, i.e. conlleval-style chunking,
    ill-formed sequences included) and the per-type values of
    ``precision_recall_fscore_support(average=None)``.
  - ``squad_pairs``: for a prediction and its gold answers, the normalised prediction and the
    exact match / F1 of the official SQuAD v1.1 evaluation script (max over the gold answers).
  - ``squad_evaluate``: predictions for the excerpt's questions (one left unanswered) and what
    the official ``evaluate`` returns for them.
"""

import json
import pathlib
import re
import string
import sys
import warnings
from collections import Counter

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/promptune/tests/fixtures/data"
SHARED = ROOT.parent / "shared"
if not SHARED.is_dir():
    SHARED = pathlib.Path("/work/shared")


# --- the official SQuAD v1.1 evaluation (evaluate-v1.1.py), unchanged ---------------------


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    message = "Unanswered question " + qa["id"] + " will receive score 0."
                    print(message, file=sys.stderr)
                    continue
                ground_truths = list(map(lambda x: x["text"], qa["answers"]))
                prediction = predictions[qa["id"]]
                exact_match += metric_max_over_ground_truths(
                    exact_match_score, prediction, ground_truths
                )
                f1 += metric_max_over_ground_truths(squad_f1_score, prediction, ground_truths)

    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total

    return {"exact_match": exact_match, "f1": f1}


# --- NER cases ----------------------------------------------------------------------------

O = "O"

NER_CASES = [
    (
        "perfect",
        [["B-PER", "I-PER", O, "B-LOC"], [O, "B-ORG", "I-ORG", "I-ORG"]],
        [["B-PER", "I-PER", O, "B-LOC"], [O, "B-ORG", "I-ORG", "I-ORG"]],
    ),
    (
        "seqeval_docstring",
        [[O, O, O, "B-MISC", "I-MISC", "I-MISC", O], ["B-PER", "I-PER", O]],
        [[O, O, "B-MISC", "I-MISC", "I-MISC", "I-MISC", O], ["B-PER", "I-PER", O]],
    ),
    (
        "wrong_type_and_boundaries",
        [["B-PER", "I-PER", O, "B-ORG", O, "B-LOC", "I-LOC"]],
        [["B-ORG", "I-ORG", O, "B-ORG", "I-ORG", "B-LOC", O]],
    ),
    (
        # I-X after O (or at the start) opens an entity, as conlleval does
        "ill_formed_i_after_o",
        [[O, "I-PER", "I-PER", O, "I-LOC"], ["I-ORG", O]],
        [[O, "B-PER", "I-PER", O, "B-LOC"], ["B-ORG", O]],
    ),
    (
        # I-Y right after B-X / I-X closes X and opens Y
        "ill_formed_type_switch",
        [["B-PER", "I-LOC", "I-LOC", O, "B-ORG", "I-PER"]],
        [["B-PER", "B-LOC", "I-LOC", O, "B-ORG", "I-ORG"]],
    ),
    (
        "adjacent_same_type",
        [["B-PER", "B-PER", "I-PER", "B-PER", O]],
        [["B-PER", "I-PER", "I-PER", "B-PER", O]],
    ),
    (
        # an entity ending a sentence does not continue into the next one
        "sentence_boundary",
        [["B-PER", "I-PER"], ["I-PER", O], ["B-LOC"]],
        [["B-PER", "I-PER"], ["B-PER", O], ["I-LOC"]],
    ),
    (
        "nothing_predicted",
        [["B-PER", O, "B-LOC"], [O, O]],
        [[O, O, O], [O, O]],
    ),
    (
        "nothing_to_find",
        [[O, O, O], [O]],
        [["B-MISC", O, "I-ORG"], [O]],
    ),
    (
        "no_entities_anywhere",
        [[O, O], []],
        [[O, O], []],
    ),
    (
        "conll_like_mixed",
        [
            ["B-ORG", O, "B-MISC", O, O, O, "B-MISC", O, O],
            ["B-PER", "I-PER"],
            [O, "B-ORG", "I-ORG", O, O, O, "B-MISC", O, O, O, "B-LOC", O],
        ],
        [
            ["B-ORG", O, "B-MISC", O, O, O, "B-PER", O, O],
            ["B-PER", "I-PER"],
            [O, "I-ORG", "I-ORG", O, O, O, "B-MISC", "I-MISC", O, O, "B-LOC", O],
        ],
    ),
    (
        # seqeval also reads IOBES and bare B / I tags (type "_") in its default mode
        "iobes_and_bare_tags",
        [["S-PER", "B-LOC", "E-LOC", O, "B", "I", O, "I"]],
        [["S-PER", "B-LOC", "I-LOC", "E-LOC", "B", "I", O, "B"]],
    ),
    (
        "multi_dash_types",
        [["B-GPE-LOC", "I-GPE-LOC", O, "B-X", "I-X-Y"]],
        [["B-GPE-LOC", "I-GPE-LOC", O, "B-X", "I-X"]],
    ),
]


def ner_case(name, gold, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(gold, pred, average=None)
        types = sorted(
            {t for sent in gold for t, _, _ in get_entities(sent)}
            | {t for sent in pred for t, _, _ in get_entities(sent)}
        )
        per_type = {
            t: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, t in enumerate(types)
        }
        micro = {
            "precision": float(precision_score(gold, pred)),
            "recall": float(recall_score(gold, pred)),
            "f1": float(f1_score(gold, pred)),
        }
    return {
        "name": name,
        "gold": gold,
        "pred": pred,
        # (type, start, end) with seqeval's inclusive end
        "gold_entities": [[list(e) for e in get_entities(sent)] for sent in gold],
        "pred_entities": [[list(e) for e in get_entities(sent)] for sent in pred],
        "micro": micro,
        "per_type": per_type,
    }


# --- SQuAD cases --------------------------------------------------------------------------

SQUAD_PAIRS = [
    ("Denver Broncos", ["Denver Broncos"]),
    ("the Denver Broncos!", ["Denver Broncos", "Broncos"]),
    ("Broncos", ["Denver Broncos", "The Broncos"]),
    ("An apple, a banana and THE cherry.", ["apple banana", "apple, banana, cherry"]),
    ("Santa Clara, California", ["Levi's Stadium", "Santa Clara", "Levi's Stadium in Santa Clara"]),
    ("", ["anything"]),
    ("The", ["a"]),
    ("the cat the cat sat", ["cat sat sat", "dog"]),
    ("Émile  Zola's\tnovels", ["émile zola’s novels", "Zola"]),
    ("U.S. theory", ["us theory", "the U.S."]),
    ("foo_bar a_the the-end", ["foobar athe theend"]),
    ("ANd the éthe thé", ["and éthe thé"]),
    ("café—au lait “quoted”", ["café au lait quoted", "cafe au lait"]),
    ("1 the 2 an 3", ["1 2 3", "1 2"]),
    ("Beyoncé and Bruno Mars", ["Beyoncé and Bruno Mars", "Bruno Mars"]),
    ("XLVII", ["Super Bowl XLVII", "Super Bowl XLVII", "XLVII"]),
    ("Super Bowl XLVIII", ["Super Bowl XLVII", "XLVII"]),
    ("completely wrong", ["right answer"]),
    ("  \n ", ["x"]),
]


def squad_pair(prediction, golds):
    return {
        "prediction": prediction,
        "gold": golds,
        "normalized": normalize_answer(prediction),
        "exact_match": float(metric_max_over_ground_truths(exact_match_score, prediction, golds)),
        "f1": float(metric_max_over_ground_truths(squad_f1_score, prediction, golds)),
    }


def squad_excerpt():
    """4 articles, 10 questions of the dev set; Super Bowl 50's includes a context with
    "Beyoncé" before the answers, so character and byte offsets differ."""
    src = SHARED / "data/squad-v1.1-dev/dev-v1.1.json"
    data = json.loads(src.read_text(encoding="utf-8"))["data"]
    by_title = {a["title"]: a for a in data}
    picks = [
        ("Super_Bowl_50", [(0, slice(0, 2)), (3, slice(3, 5))]),
        ("Warsaw", [(0, slice(0, 2))]),
        ("Normans", [(0, slice(0, 2))]),
        ("Nikola_Tesla", [(0, slice(0, 2))]),
    ]
    articles = []
    for title, paragraphs in picks:
        art = by_title[title]
        articles.append(
            {
                "title": title,
                "paragraphs": [
                    {"context": art["paragraphs"][p]["context"], "qas": art["paragraphs"][p]["qas"][s]}
                    for p, s in paragraphs
                ],
            }
        )
    return {"version": "1.1", "data": articles}


def squad_evaluate_case(dataset):
    qas = [qa for art in dataset["data"] for p in art["paragraphs"] for qa in p["qas"]]
    preds = {}
    variants = [
        lambda a: a,
        lambda a: "the " + a + ".",
        lambda a: a.split()[0] if a.split() else a,
        lambda a: "something else entirely",
        lambda a: a.upper() + " and more words here",
    ]
    for i, qa in enumerate(qas[:-1]):  # the last question stays unanswered
        preds[qa["id"]] = variants[i % len(variants)](qa["answers"][-1]["text"])
    return {"predictions": preds, "expected": evaluate(dataset["data"], preds)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    excerpt_path = OUT / "squad_dev_excerpt.json"
    if (SHARED / "data/squad-v1.1-dev/dev-v1.1.json").is_file():
        excerpt_path.write_text(
            json.dumps(squad_excerpt(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    dataset = json.loads(excerpt_path.read_text(encoding="utf-8"))
    out = {
        "generator": "tests/reference/make_metric_fixtures.py",
        "ner": [ner_case(*c) for c in NER_CASES],
        "squad_pairs": [squad_pair(*c) for c in SQUAD_PAIRS],
        "squad_evaluate": squad_evaluate_case(dataset),
    }
    path = OUT / "metrics_expected.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", path, "and", excerpt_path)


if __name__ == "__main__":
    main()
