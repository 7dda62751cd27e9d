"""Reference values for the generation metrics (crates/promptune/src/metrics/generation).

Items: 40 invented restaurant descriptions in the E2E style with 1 to 6 references each; each
hypothesis is one of the item's references, altered deterministically (words dropped or
swapped, case changed, another item's text, empty), plus a few hand-written edge cases
(numbers, dashes, entities).

Values (crates/promptune/tests/fixtures/data/generation_metrics.json):
- `sacrebleu`: corpus_bleu(lowercase=True) and (lowercase=False), tokenize 13a;
- `rouge_score`: rouge-score 0.1.2 RougeScorer(rouge1/2/L, use_stemmer) score_multi F1, mean;
- `cider`, `rouge_l_coco`: pycocoevalcap's Cider and Rouge on the lowercased 13a tokens;
- `pymteval_bleu`, `pymteval_nist`: the E2E challenge's Python mteval (BLEUScore, NISTScore),
  imported from a checkout of github.com/tuetschek/e2e-metrics named by $E2E_METRICS;
- `e2e_script` (only with E2E_SCRIPT=1; needs Java, Perl, matplotlib and scikit-image): the
  E2E script's own figures (measure_scores.py: Perl mteval-v13a, pycocoevalcap with Java's PTB
  tokenizer and METEOR 1.5), to show how far the token choice moves CIDEr and ROUGE-L.

Run with the reference venv plus `pip install sacrebleu rouge-score pycocoevalcap future`:
    E2E_METRICS=/path/to/e2e-metrics python tests/reference/make_generation_metric_fixtures.py
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import sacrebleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from rouge_score import rouge_scorer
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "promptune", "tests", "fixtures", "data",
                   "generation_metrics.json")


def items():
    """40 invented restaurant descriptions in the E2E style, 1 to 6 references each (no E2E
    text is copied: the real set stays in ../shared)."""
    rng = random.Random(13)
    names = ["The Mill", "Blue Spice", "The Golden Palace", "Zizzi", "Green Man", "The Punter",
             "Aromi", "The Wrestlers", "Cotto", "Fitzbillies"]
    foods = ["Italian", "French", "Chinese", "Indian", "English", "Japanese", "fast food"]
    areas = ["city centre", "riverside"]
    prices = ["cheap", "moderate", "high", "less than £20", "£20-25", "more than £30"]
    templates = [
        "{n} is a {p} {f} restaurant in the {a}.",
        "In the {a} there is a {f} place called {n}, with {p} prices.",
        "{n} serves {f} food at {p} prices; it is in the {a}.",
        "Located in the {a}, {n} offers {f} food. Prices are {p}.",
        "{n}, a {f} venue near the {a}, is {p}.",
        "For {p} {f} food, try {n} in the {a}.",
    ]
    out = []
    for _ in range(40):
        v = dict(n=rng.choice(names), f=rng.choice(foods), a=rng.choice(areas), p=rng.choice(prices))
        k = rng.randint(1, 6)
        out.append([t.format(**v) for t in rng.sample(templates, k)])
    return out


def hypotheses(refs):
    rng = random.Random(7)
    out = []
    for i, group in enumerate(refs):
        words = group[i % len(group)].split()
        kind = i % 8
        if kind == 1 and len(words) > 3:
            del words[rng.randrange(len(words))]
        elif kind == 2 and len(words) > 3:
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif kind == 3:
            words = [w.upper() for w in words]
        elif kind == 4:
            words = refs[(i + 1) % len(refs)][0].split()
        elif kind == 5:
            words = words[: max(1, len(words) // 3)]
        elif kind == 6:
            words = words + words[:4]
        out.append(" ".join(words))
    out[7] = ""
    return out


EXTRA = [
    ("Prices range 20-25 pounds, rated 3.5 out of 5 &amp; near the A1.",
     ["It costs 20-25 pounds and is rated 3.5 of 5, near the A1.", "20 - 25 pounds; rating 3.5/5 & near A1"]),
    ("\"Quoted\" (text) with {braces} and [brackets]!",
     ["Quoted text with braces and brackets.", "\"quoted\" (text) with {braces} and [brackets]!"]),
    ("The Eagle's coffee shop, 1,000 metres away.",
     ["The Eagle coffee shop is 1,000 metres away.", "A coffee shop, The Eagle, 1.000 metres away."]),
]


def main():
    refs = items()
    hyps = hypotheses(refs)
    for h, r in EXTRA:
        hyps.append(h)
        refs.append(r)
    most = max(len(r) for r in refs)
    streams = [[g[k] if k < len(g) else None for g in refs] for k in range(most)]
    out = {"hypotheses": hyps, "references": refs}
    for case, lower in [("insensitive", True), ("sensitive", False)]:
        b = sacrebleu.corpus_bleu(hyps, streams, lowercase=lower, tokenize="13a")
        out[f"sacrebleu_{case}"] = {"score": b.score, "precisions": b.precisions, "bp": b.bp,
                                    "sys_len": b.sys_len, "ref_len": b.ref_len}
    tok = Tokenizer13a()
    norm = lambda s: tok(s.lower().rstrip())
    gts = {i: [norm(r) for r in g] for i, g in enumerate(refs)}
    res = {i: [norm(h)] for i, h in enumerate(hyps)}
    out["cider"] = Cider().compute_score(gts, res)[0]
    out["rouge_l_coco"] = Rouge().compute_score(gts, res)[0]
    for stem in [True, False]:
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
        sums = {k: 0.0 for k in ["rouge1", "rouge2", "rougeL"]}
        for h, g in zip(hyps, refs):
            s = scorer.score_multi(g, h)
            for k in sums:
                sums[k] += s[k].fmeasure
        out[f"rouge_score_stem_{str(stem).lower()}"] = {k: v / len(hyps) for k, v in sums.items()}
    e2e = os.environ.get("E2E_METRICS")
    if e2e:
        sys.path.insert(0, e2e)
        from metrics.pymteval import BLEUScore, NISTScore
        bleu, nist = BLEUScore(), NISTScore()
        for h, g in zip(hyps, refs):
            bleu.append(h, g)
            nist.append(h, g)
        out["pymteval_bleu"] = bleu.score() * 100
        out["pymteval_nist"] = nist.score()
    if e2e and os.environ.get("E2E_SCRIPT") == "1":
        with tempfile.TemporaryDirectory() as tmp:
            hyp_file, ref_file = os.path.join(tmp, "hyp.txt"), os.path.join(tmp, "ref.txt")
            # the script reads one hypothesis per line: the empty one becomes a dot
            with open(hyp_file, "w") as f:
                f.write("\n".join(h if h else "." for h in hyps) + "\n")
            with open(ref_file, "w") as f:
                f.write("\n\n".join("\n".join(g) for g in refs) + "\n")
            run = subprocess.run([sys.executable, os.path.join(e2e, "measure_scores.py"), ref_file, hyp_file],
                                 capture_output=True, text=True, cwd=e2e, timeout=600)
            scores = {}
            for line in run.stdout.splitlines():
                if ":" in line and line.split(":")[0] in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"):
                    k, v = line.split(":")
                    scores[k] = float(v)
            if scores:
                out["e2e_script"] = scores
            else:
                print(run.stderr[-2000:], file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
