"""HF transformers + PEFT reference for the MiniLM experiments (SST-2, CoNLL-2003 NER, SQuAD v1.1).

Runs on CPU (2 threads, seed 42) the reference side of each task x setting and writes one JSON:

  task   settings            data split                                          epochs  metric
  sst2   prefix, head, full  first 1000 rows of train_full.tsv / all 872 dev     3       accuracy, macro-F1
  ner    prefix, full        first 2000 train.txt sentences / all 3453 test      3       seqeval entity F1/P/R
  qa     prefix, full        SQuAD dev articles 0..38 (first 2000 questions) /   2       SQuAD v1.1 EM / F1
                             articles 38..48 (first 1000 questions)

Settings: `prefix` = PEFT PrefixTuningConfig(num_virtual_tokens=20, prefix_projection=False), which
trains the prefix and the task head (classifier / qa_outputs, via modules_to_save); `head` = frozen BERT,
only `classifier` trained; `full` = full fine-tuning. AdamW (weight decay 0), linear decay to 0 without
warm-up, grad clipping 1.0, batch 16 (padded to the longest in the batch), model.train() while training,
model.eval() + no_grad for evaluation (batch 32; eval_s / eval_examples_per_s include the metric
computation, eval_forward_s / eval_forward_examples_per_s only the forward passes). Learning rates:
prefix/head 1e-2; full 2e-5 (sst2), 5e-5 (ner, qa). QA pre/post-processing follows HF run_qa.py
(only_second, max_length 384, stride 128, unanswerable windows labelled at CLS; n_best 20,
max_answer_length 30; trained on the first answer, scored against all). NER labels the first sub-token
of each word (max_length 128); words without a prediction (truncated) count as "O".

Every task x setting runs in its own child process (so peak RSS, from ru_maxrss, is per run), and the
output JSON is updated after each run (existing entries for other runs are kept, so tasks can be run
separately into the same file).

Usage (python with torch, transformers, peft 0.21.2, seqeval):
  nice -n 5 python bench/minilm_reference.py --model /root/models/all-minilm-l6-v2 \
      --data /work/shared/data --out bench/results/minilm_reference.json \
      [--tasks sst2,ner,qa] [--settings prefix,head,full] [--smoke]
      [--train-limit N] [--eval-limit N] [--epochs N] [--seed N]
--smoke: 32 train / 32 eval examples, 1 epoch, to check that everything runs. The limits override the
table's counts; the QA figures in the README come from `--tasks qa --train-limit 1000 --eval-limit 300`,
the split of examples/squad-minilm-ptv2.toml. --seed (default 42) seeds torch, the head init and
the shuffling; a run with another seed is stored as `task/setting/seedN`.
"""
import argparse, collections, json, math, os, platform, random, re, resource, string, subprocess, sys, time

SETTINGS = {"sst2": ["prefix", "head", "full"], "ner": ["prefix", "full"], "qa": ["prefix", "full"]}
LR = {("sst2", "prefix"): 1e-2, ("sst2", "head"): 1e-2, ("sst2", "full"): 2e-5,
      ("ner", "prefix"): 1e-2, ("ner", "full"): 5e-5, ("qa", "prefix"): 1e-2, ("qa", "full"): 5e-5}
EPOCHS = {"sst2": 3, "ner": 3, "qa": 2}
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
BATCH, EVAL_BATCH, SEED, N_PREFIX = 16, 32, 42, 20


# ----------------------------------------------------------------------------- data
def load_sst2(data, n_train, n_eval):
    def read(path, limit):
        with open(path, encoding="utf-8") as f:
            rows = [l.rstrip("\n").split("\t") for l in f.read().split("\n")[1:] if l.strip()]
        return [(s.strip(), int(y)) for s, y in rows[:limit]]
    return read(f"{data}/sst2-glue/train_full.tsv", n_train or 1000), read(f"{data}/sst2-glue/dev.tsv", n_eval)


def read_conll(path):
    sents, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if cur:
                    sents.append(cur)
                cur = []
                continue
            cur.append((parts[0], parts[-1]))
    if cur:
        sents.append(cur)
    return [([w for w, _ in s], [t for _, t in s]) for s in sents]


def iob1_starts(sents):
    """Number of entities that start with I- (IOB1 style) rather than B-."""
    n = 0
    for _, tags in sents:
        prev = "O"
        for t in tags:
            if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
                n += 1
            prev = t
    return n


def iob1_to_iob2(tags):
    out, prev = [], "O"
    for t in tags:
        if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
            t = "B-" + t[2:]
        out.append(t)
        prev = t
    return out


def load_squad(data):
    with open(f"{data}/squad-v1.1-dev/dev-v1.1.json", encoding="utf-8") as f:
        arts = json.load(f)["data"]
    def qs(articles):
        return [{"id": q["id"], "question": q["question"], "context": p["context"],
                 "answers": [a["text"] for a in q["answers"]], "starts": [a["answer_start"] for a in q["answers"]]}
                for a in articles for p in a["paragraphs"] for q in p["qas"]]
    return qs(arts[:38]), qs(arts[38:48])


# ----------------------------------------------------------------------------- metrics
def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(pred, gold):
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


# ----------------------------------------------------------------------------- one run
def run_one(args, task, setting):
    import numpy as np
    import torch
    from transformers import (AutoTokenizer, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              AutoModelForQuestionAnswering, get_linear_schedule_with_warmup)
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    torch.set_num_threads(2)
    seed = args.seed
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    t_wall = time.time()
    n_train = 32 if args.smoke else args.train_limit
    n_eval = 32 if args.smoke else args.eval_limit
    epochs = 1 if args.smoke else (args.epochs or EPOCHS[task])
    tok = AutoTokenizer.from_pretrained(args.model)
    info = {}

    # ---- features
    if task == "sst2":
        train, dev = load_sst2(args.data, n_train, n_eval)
        enc = lambda rows: [dict(tok(s, truncation=True, max_length=128), labels=y) for s, y in rows]
        train_f, eval_f = enc(train), enc(dev)
        info.update(n_train=len(train), n_eval=len(dev))
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        ttype = TaskType.SEQ_CLS
    elif task == "ner":
        train = read_conll(f"{args.data}/conll2003/train.txt")[:n_train or 2000]
        test = read_conll(f"{args.data}/conll2003/test.txt")[:n_eval]
        n1 = iob1_starts(train) + iob1_starts(test)
        info.update(n_train=len(train), n_eval=len(test), iob1_entity_starts=n1,
                    tag_scheme="IOB1 (converted to IOB2)" if n1 else "IOB2")
        if n1:
            train = [(w, iob1_to_iob2(t)) for w, t in train]
            test = [(w, iob1_to_iob2(t)) for w, t in test]
        tid = {t: i for i, t in enumerate(TAGS)}
        def enc(sents):
            out = []
            for words, tags in sents:
                e = tok(words, is_split_into_words=True, truncation=True, max_length=128)
                wids, prev, labels = e.word_ids(), None, []
                for w in wids:
                    labels.append(-100 if w is None or w == prev else tid[tags[w]])
                    prev = w
                out.append(dict(input_ids=e["input_ids"], token_type_ids=e["token_type_ids"],
                                attention_mask=e["attention_mask"], labels=labels, _words=wids))
            return out
        train_f, eval_f = enc(train), enc(test)
        model = AutoModelForTokenClassification.from_pretrained(
            args.model, num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id=tid)
        ttype = TaskType.TOKEN_CLS
    else:
        train_q, eval_q = load_squad(args.data)
        train_q, eval_q = train_q[:n_train or 2000], eval_q[:n_eval or 1000]
        def enc(qs, training):
            e = tok([q["question"].lstrip() for q in qs], [q["context"] for q in qs], truncation="only_second",
                    max_length=384, stride=128, return_overflowing_tokens=True, return_offsets_mapping=True)
            out = []
            for i in range(len(e["input_ids"])):
                q = qs[e["overflow_to_sample_mapping"][i]]
                seq, offs = e.sequence_ids(i), e["offset_mapping"][i]
                f = dict(input_ids=e["input_ids"][i], token_type_ids=e["token_type_ids"][i],
                         attention_mask=e["attention_mask"][i])
                if training:
                    cls = e["input_ids"][i].index(tok.cls_token_id)
                    s_char = q["starts"][0]; e_char = s_char + len(q["answers"][0])
                    ts = seq.index(1); te = len(seq) - 1 - seq[::-1].index(1)
                    if not (offs[ts][0] <= s_char and offs[te][1] >= e_char):
                        f["start_positions"] = f["end_positions"] = cls
                    else:
                        while ts < len(offs) and offs[ts][0] <= s_char:
                            ts += 1
                        while offs[te][1] >= e_char:
                            te -= 1
                        f["start_positions"], f["end_positions"] = ts - 1, te + 1
                else:
                    f["_qid"] = q["id"]
                    f["_offs"] = [o if seq[k] == 1 else None for k, o in enumerate(offs)]
                out.append(f)
            return out
        train_f, eval_f = enc(train_q, True), enc(eval_q, False)
        info.update(n_train=len(train_q), n_eval=len(eval_q), n_train_windows=len(train_f), n_eval_windows=len(eval_f))
        model = AutoModelForQuestionAnswering.from_pretrained(args.model)
        ttype = TaskType.QUESTION_ANS

    # ---- setting
    if setting == "prefix":
        model = get_peft_model(model, PrefixTuningConfig(task_type=ttype, num_virtual_tokens=N_PREFIX,
                                                         prefix_projection=False))
    elif setting == "head":
        for n, p in model.named_parameters():
            p.requires_grad = n.startswith("classifier.")
    params = [p for p in model.parameters() if p.requires_grad]
    info["trainable_params"] = sum(p.numel() for p in params)
    info["total_params"] = sum(p.numel() for p in model.parameters())
    info["trainable_names"] = sorted({n.split(".weight")[0].split(".bias")[0] for n, p in model.named_parameters()
                                      if p.requires_grad})[:12]
    if setting == "prefix":
        info["peft_nb_trainable_all"] = list(model.get_nb_trainable_parameters())

    # ---- batching (pad to the longest in the batch)
    def collate(feats):
        L = max(len(f["input_ids"]) for f in feats)
        b = {}
        for k in ("input_ids", "token_type_ids", "attention_mask"):
            b[k] = torch.tensor([f[k] + [0] * (L - len(f[k])) for f in feats])
        if "labels" in feats[0]:
            if isinstance(feats[0]["labels"], list):
                b["labels"] = torch.tensor([f["labels"] + [-100] * (L - len(f["labels"])) for f in feats])
            else:
                b["labels"] = torch.tensor([f["labels"] for f in feats])
        for k in ("start_positions", "end_positions"):
            if k in feats[0]:
                b[k] = torch.tensor([f[k] for f in feats])
        return b

    # ---- train
    opt = torch.optim.AdamW(params, lr=LR[(task, setting)], weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train_f) / BATCH)
    sched = get_linear_schedule_with_warmup(opt, 0, steps_per_epoch * epochs)
    gen = torch.Generator().manual_seed(seed)
    step_times, losses = [], []
    model.train()
    t_train = time.time()
    for ep in range(epochs):
        order = torch.randperm(len(train_f), generator=gen).tolist()
        ep_loss = 0.0
        for s in range(steps_per_epoch):
            batch = collate([train_f[i] for i in order[s * BATCH:(s + 1) * BATCH]])
            t0 = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            step_times.append(time.perf_counter() - t0)
            ep_loss += loss.item()
            if (s + 1) % 25 == 0:
                print(f"[{task}/{setting}] epoch {ep + 1} step {s + 1}/{steps_per_epoch} loss {loss.item():.4f} "
                      f"({sum(step_times) / len(step_times):.3f} s/step)", flush=True)
        losses.append(ep_loss / steps_per_epoch)
        print(f"[{task}/{setting}] epoch {ep + 1}/{epochs} mean loss {losses[-1]:.4f} "
              f"({sum(step_times) / len(step_times):.3f} s/step)", flush=True)
    train_s = time.time() - t_train

    # ---- eval
    model.eval()
    outs = []
    t_eval = time.time()
    with torch.no_grad():
        for s in range(0, len(eval_f), EVAL_BATCH):
            feats = eval_f[s:s + EVAL_BATCH]
            o = model(**collate(feats))
            if task == "qa":
                for j in range(len(feats)):
                    outs.append((o.start_logits[j].numpy(), o.end_logits[j].numpy()))
            else:
                outs.extend(o.logits.argmax(-1).tolist())
    eval_forward_s = time.time() - t_eval
    res = {}
    if task == "sst2":
        gold = [f["labels"] for f in eval_f]
        res["accuracy"] = sum(p == g for p, g in zip(outs, gold)) / len(gold)
        f1s = []
        for c in (0, 1):
            tp = sum(p == c and g == c for p, g in zip(outs, gold))
            fp = sum(p == c and g != c for p, g in zip(outs, gold))
            fn = sum(p != c and g == c for p, g in zip(outs, gold))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        res["macro_f1"] = sum(f1s) / 2
    elif task == "ner":
        from seqeval.metrics import f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2
        y_true, y_pred = [], []
        for (words, tags), f, pred in zip(test, eval_f, outs):
            wp, prev = ["O"] * len(words), None
            for k, w in enumerate(f["_words"]):
                if w is not None and w != prev:
                    wp[w] = TAGS[pred[k]]
                prev = w
            y_true.append(tags); y_pred.append(wp)
        res.update(f1=f1_score(y_true, y_pred), precision=precision_score(y_true, y_pred),
                   recall=recall_score(y_true, y_pred),
                   f1_strict_iob2=f1_score(y_true, y_pred, mode="strict", scheme=IOB2))
    else:
        by_q = collections.defaultdict(list)
        for f, o in zip(eval_f, outs):
            by_q[f["_qid"]].append((f, o))
        em = f1 = 0.0
        for q in eval_q:
            best, best_text = -1e30, ""
            for f, (sl, el) in by_q[q["id"]]:
                offs = f["_offs"]
                for i in np.argsort(sl)[-1:-21:-1]:
                    for j in np.argsort(el)[-1:-21:-1]:
                        if i >= len(offs) or j >= len(offs) or offs[i] is None or offs[j] is None:
                            continue
                        if j < i or j - i + 1 > 30:
                            continue
                        if sl[i] + el[j] > best:
                            best, best_text = sl[i] + el[j], q["context"][offs[i][0]:offs[j][1]]
            em += max(float(squad_normalize(best_text) == squad_normalize(g)) for g in q["answers"])
            f1 += max(squad_f1(best_text, g) for g in q["answers"])
        res.update(exact_match=100 * em / len(eval_q), f1=100 * f1 / len(eval_q))
    eval_s = time.time() - t_eval

    info.update(task=task, setting=setting, seed=seed, metrics=res, lr=LR[(task, setting)], epochs=epochs, batch_size=BATCH,
                optimizer_steps=len(step_times), mean_s_per_step=sum(step_times) / len(step_times),
                train_s=train_s, epoch_mean_loss=losses, eval_s=eval_s, eval_examples_per_s=info["n_eval"] / eval_s,
                eval_forward_s=eval_forward_s, eval_forward_examples_per_s=info["n_eval"] / eval_forward_s,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, wall_s=time.time() - t_wall)
    return info


# ----------------------------------------------------------------------------- driver
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", default="sst2,ner,qa")
    ap.add_argument("--settings", default="prefix,head,full")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--train-limit", type=int, help="training examples / questions (default: the task's)")
    ap.add_argument("--eval-limit", type=int, help="evaluation examples / questions (default: the task's)")
    ap.add_argument("--epochs", type=int, help="epochs (default: the task's)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: task:setting, run in this process
    args = ap.parse_args()

    if args.one:
        task, setting = args.one.split(":")
        info = run_one(args, task, setting)
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)
        return

    import torch, transformers, peft
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f).get("runs", {})
    settings = args.settings.split(",")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    for task in args.tasks.split(","):
        for setting in (s for s in SETTINGS[task] if s in settings):
            part = f"{args.out}.{task}-{setting}.part"
            cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--data", args.data,
                   "--out", part, "--one", f"{task}:{setting}"] + (["--smoke"] if args.smoke else [])
            for flag, value in [("--train-limit", args.train_limit), ("--eval-limit", args.eval_limit),
                                ("--epochs", args.epochs), ("--seed", args.seed)]:
                if value:
                    cmd += [flag, str(value)]
            key = f"{task}/{setting}" + (f"/seed{args.seed}" if args.seed != SEED else "")
            print(f"== {key}", flush=True)
            if subprocess.run(cmd).returncode != 0:
                print(f"!! {key} failed", flush=True)
                continue
            with open(part) as f:
                results[key] = json.load(f)
            os.remove(part)
            r = results[key]
            print(f"   {r['metrics']} trainable {r['trainable_params']} {r['mean_s_per_step']:.3f} s/step "
                  f"{r['peak_rss_mib']:.0f} MiB {r['eval_examples_per_s']:.1f} ex/s", flush=True)
            doc = {"description": "HF transformers + PEFT CPU reference for MiniLM (see bench/minilm_reference.py)",
                   "model": args.model, "smoke": args.smoke, "threads": 2, "seed": SEED,
                   "versions": {"python": platform.python_version(), "torch": torch.__version__,
                                "transformers": transformers.__version__, "peft": peft.__version__},
                   "runs": results}
            with open(args.out, "w") as f:
                json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
