#!/usr/bin/python3
"""Train a Kefu intent model and sentence encoder, and export it to ONNX.

    /usr/bin/python3 training/train_intent.py --out models/intent            # the demo model
    /usr/bin/python3 training/train_intent.py --train var/clinc/train.csv --val var/clinc/val.csv \\
        --knowledge '' --extra-oos ../shared/datasets/clinc150/all_wiki_sents.txt --out var/clinc-model

A small BERT-architecture encoder (WordPiece embeddings + positions, transformer layers,
masked mean pooling, plus a bag-of-pieces shortcut that carries small data sets) with an
intent head, optionally pretrained with masked-language modelling on all the text at hand.
Training data is a CSV (text,intent[,language]) or the product's YAML intents file; examples
labelled --oos-label (default "oos") or "out_of_scope" train the out-of-scope class.
Unlabelled sentences (--extra-oos) are cut into query-sized spans and used as more
out-of-scope examples (outlier exposure). The temperature and the out-of-scope threshold are
fitted on the validation split (--val, else a held-out part of --train).

The export: model.onnx (input_ids, attention_mask → logits, embedding), vocab.txt,
labels.json, model.json (temperature, threshold, metrics, data hash, version) and
tokenizer_golden.jsonl, which nlu's Go tests compare with the Go tokenizer.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kefu_tokenizer as kt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OOS = "out_of_scope"


def log(msg, **kv):
    extra = " ".join(f"{k}={v}" for k, v in kv.items())
    print(f"{time.strftime('%H:%M:%S')} {msg} {extra}".rstrip(), flush=True)


class DataError(Exception):
    pass


# ----------------------------------------------------------------------------- data

def read_examples(path, oos_label):
    """[(text, label, language, where)] from a CSV or YAML file; errors name file and line."""
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8")
    rows = read_yaml(path, text) if path.endswith((".yaml", ".yml")) else read_csv(path, text)
    out = []
    for t, label, lang, where in rows:
        if label in (oos_label, OOS):
            label = OOS
        out.append((t, label, lang, where))
    counts = Counter(r[1] for r in out)
    for t, label, lang, where in out:
        if counts[label] < 2:
            raise DataError(f"{where}: intent {label!r} has only one example (at least 2 are needed)")
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def read_csv(path, text):
    rd = csv.reader(text.splitlines())
    try:
        header = [h.strip().lower() for h in next(rd)]
    except StopIteration:
        raise DataError(f"{path}:1: empty file (want a header line: text,intent)")
    for col in ("text", "intent"):
        if col not in header:
            raise DataError(f"{path}:1: missing column {col!r} (header is {','.join(header)})")
    ti, ii = header.index("text"), header.index("intent")
    li = header.index("language") if "language" in header else None
    rows = []
    for n, rec in enumerate(rd, start=2):
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) <= max(ti, ii):
            raise DataError(f"{path}:{n}: expected {len(header)} columns, got {len(rec)}")
        t, label = rec[ti].strip(), rec[ii].strip()
        if not t:
            raise DataError(f"{path}:{n}: empty text")
        if not label:
            raise DataError(f"{path}:{n}: empty intent")
        lang = rec[li].strip() if li is not None and li < len(rec) else ""
        rows.append((t, label, lang, f"{path}:{n}"))
    return rows


def read_yaml(path, text):
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise DataError(f"{path}:{line}: {e.problem}")
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), list):
        raise DataError(f"{path}:1: want a mapping with a list under 'intents'")
    rows = []
    for i, it in enumerate(doc["intents"], start=1):
        name = it.get("name") if isinstance(it, dict) else None
        if not name:
            raise DataError(f"{path}: intent #{i} has no name")
        for lang, exs in (it.get("examples") or {}).items():
            for e in exs or []:
                t = str(e).strip()
                if not t:
                    raise DataError(f"{path}: intent {name!r} ({lang}) has an empty example")
                rows.append((t, name, lang, f"{path} (intent {name})"))
    return rows


def load_knowledge(path):
    import yaml
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    rows, texts = [], []
    for e in doc["entries"]:
        for lang, tr in e.items():
            if lang == "key":
                continue
            for q in [tr["question"], tr["title"]] + list(tr.get("alternates", [])):
                rows.append((str(q), e["key"], lang, path))
            texts.append(tr["answer"])
    return rows, texts


def split(rows, frac, seed):
    """Stratified by (label, language): every group keeps at least one training example."""
    rnd = random.Random(seed)
    groups = {}
    for r in rows:
        groups.setdefault((r[1], r[2]), []).append(r)
    train, val = [], []
    for key in sorted(groups):
        g = groups[key][:]
        rnd.shuffle(g)
        n = int(round(len(g) * frac)) if len(g) > 2 else 0
        val += g[:n]
        train += g[n:]
    return train, val


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def oos_spans(sentences, n, rnd):
    """n query-sized spans (3-12 words) cut from unlabelled sentences."""
    out = []
    for _ in range(n):
        words = rnd.choice(sentences).split()
        k = min(len(words), rnd.randint(3, 12))
        i = rnd.randint(0, len(words) - k)
        out.append(" ".join(words[i:i + k]))
    return out


# ----------------------------------------------------------------------------- model

class Layer(nn.Module):
    def __init__(self, h, heads, ff, drop):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(h, 3 * h)
        self.out = nn.Linear(h, h)
        self.ln1 = nn.LayerNorm(h, eps=1e-12)
        self.ff1 = nn.Linear(h, ff)
        self.ff2 = nn.Linear(ff, h)
        self.ln2 = nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(drop)

    def forward(self, x, bias):
        b, t, h = x.shape
        d = h // self.heads
        qkv = self.qkv(x).view(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d)) + bias
        att = self.drop(att.softmax(-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.drop(self.out(y)))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))


class Encoder(nn.Module):
    def __init__(self, vocab, n_intents, n_entries, hidden, layers, heads, max_len, drop, ngram_buckets=0):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        # Sparse gradients: a step touches only the n-grams of its batch, not the whole table.
        self.ngram = nn.Embedding(ngram_buckets + 1, hidden, padding_idx=0, sparse=True) if ngram_buckets else None
        self.pos = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(drop)
        self.layers = nn.ModuleList([Layer(hidden, heads, hidden * 4, drop) for _ in range(layers)])
        self.intent = nn.Linear(hidden, n_intents)
        self.entry = nn.Linear(hidden, max(1, n_entries))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab))

    def states(self, ids, mask):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        emb = self.tok(ids)
        x = self.drop(self.ln(emb + self.pos(pos)))
        bias = ((1.0 - mask.to(torch.float32)) * -10000.0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return emb, x

    def pooled(self, ids, mask, ngrams=None):
        emb, x = self.states(ids, mask)
        m = mask.to(torch.float32)
        w = m.unsqueeze(-1) / m.sum(1, keepdim=True).clamp(min=1.0).unsqueeze(-1)
        p = (x * w).sum(1) + (emb * w).sum(1)  # contextual mean + bag of pieces
        if self.ngram is not None and ngrams is not None:
            nm = (ngrams > 0).to(torch.float32)
            nw = nm.unsqueeze(-1) / nm.sum(1, keepdim=True).clamp(min=1.0).unsqueeze(-1)
            p = p + (self.ngram(ngrams) * nw).sum(1)  # bag of character n-grams
        return p

    def forward(self, ids, mask, ngrams=None):
        p = self.pooled(ids, mask, ngrams)
        return self.intent(self.drop(p)), F.normalize(p, dim=-1)

    def mlm_logits(self, ids, mask):
        _, x = self.states(ids, mask)
        return x @ self.tok.weight.t() + self.mlm_bias


class Export(nn.Module):
    """What ONNX sees: input_ids, attention_mask → logits, embedding."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, input_ids, attention_mask):
        p = self.enc.pooled(input_ids, attention_mask)
        return self.enc.intent(p), F.normalize(p, dim=-1)


class ExportNgrams(Export):
    """With character n-grams: input_ids, attention_mask, ngram_ids → logits, embedding."""

    def forward(self, input_ids, attention_mask, ngram_ids):
        p = self.enc.pooled(input_ids, attention_mask, ngram_ids)
        return self.enc.intent(p), F.normalize(p, dim=-1)


class ExportSim(nn.Module):
    """Adds intent_similarity: the cosine of the embedding to the nearest intent centroid."""

    def __init__(self, enc, centroids, ngrams):
        super().__init__()
        self.enc, self.ngrams = enc, ngrams
        self.register_buffer("centroids", centroids)

    def forward(self, input_ids, attention_mask, ngram_ids=None):
        p = self.enc.pooled(input_ids, attention_mask, ngram_ids)
        e = F.normalize(p, dim=-1)
        return self.enc.intent(p), e, (e @ self.centroids.t()).max(-1).values


# ----------------------------------------------------------------------------- training

_CACHE = {}


def _cached(tok, text, max_len, buckets):
    """Token ids and n-gram ids of a text, computed once: every epoch sees the same texts."""
    key = (text, max_len, buckets)
    hit = _CACHE.get(key)
    if hit is None:
        hit = (tok.encode(text, max_len), kt.ngram_ids(text, buckets) if buckets else [])
        if len(_CACHE) < 500000:
            _CACHE[key] = hit
    return hit


def encode_batch(texts, tok, max_len, rnd=None, drop=0.0, buckets=0):
    """ids, mask and (with buckets) hashed character n-grams of a batch of texts."""
    seqs = []
    for t in texts:
        ids = _cached(tok, t, max_len, buckets)[0]
        if rnd is not None and drop > 0 and len(ids) > 4:
            keep = [ids[0]] + [i for i in ids[1:-1] if rnd.random() >= drop] + [ids[-1]]
            if len(keep) > 2:
                ids = keep
        seqs.append(ids)
    t = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    if not buckets:
        return ids, mask, None
    grams = [_cached(tok, t, max_len, buckets)[1] or [0] for t in texts]
    if rnd is not None and drop > 0:
        grams = [[g for g in gs if rnd.random() >= drop] or gs for gs in grams]
    ng = torch.zeros(len(grams), max(len(g) for g in grams), dtype=torch.long)
    for i, g in enumerate(grams):
        ng[i, :len(g)] = torch.tensor(g)
    return ids, mask, ng


@torch.no_grad()
def logits_of(model, texts, tok, max_len, buckets=0):
    model.eval()
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
    for i in range(0, len(order), 256):
        idx = order[i:i + 256]
        ids, mask, ng = encode_batch([texts[j] for j in idx], tok, max_len, buckets=buckets)
        out.append((idx, model(ids, mask, ng)[0]))
    res = torch.zeros(len(texts), out[0][1].shape[1]) if out else torch.zeros(0)
    for idx, l in out:
        res[idx] = l
    return res


class Optimizer:
    """AdamW for dense parameters and SparseAdam for the n-gram table (sparse gradients), both
    on a one-cycle schedule; step() also advances the schedule."""

    def __init__(self, model, lr, steps):
        sparse = [model.ngram.weight] if model.ngram is not None else []
        dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
        self.opts = [torch.optim.AdamW(dense, lr=lr, weight_decay=0.01, foreach=True)]
        if sparse:
            self.opts.append(torch.optim.SparseAdam(sparse, lr=lr))
        self.scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=lr, total_steps=steps, pct_start=0.1)
                       for o in self.opts]

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad(set_to_none=True)

    def step(self):
        for o in self.opts:
            o.step()
        for sc in self.scheds:
            sc.step()


@torch.no_grad()
def embeddings_of(model, texts, tok, max_len, buckets=0):
    model.eval()
    out = torch.zeros(len(texts), model.tok.weight.shape[1])
    for i in range(0, len(texts), 256):
        ids, mask, ng = encode_batch(texts[i:i + 256], tok, max_len, buckets=buckets)
        out[i:i + 256] = model(ids, mask, ng)[1]
    return out


def centroids_of(emb, labels, names):
    """The normalised mean embedding of each in-scope intent (zeros for out_of_scope)."""
    c = torch.zeros(len(names), emb.shape[1])
    for i, n in enumerate(names):
        sel = labels == i
        if n != OOS and sel.any():
            c[i] = F.normalize(emb[sel].mean(0), dim=0)
    return c


def choose_thresholds(probs, sim, labels, names, floor=0.0):
    """Out-of-scope thresholds on validation data: with a recall floor, the highest in-scope
    accuracy whose out-of-scope recall reaches the floor; else the best mean of in-scope
    accuracy and out-of-scope recall. A message is out of scope when the out_of_scope class wins, its
    confidence is under t_conf, or its similarity to the nearest intent centroid is under
    t_sim (0 turns that test off)."""
    oos = names.index(OOS)
    conf, pred = probs.max(-1)
    ins, out = labels != oos, labels == oos
    best = (0.0, 0.0, -1.0)
    for ts in [0.0] + [x / 100 for x in range(20, 96, 2)]:
        for tc in [x / 100 for x in range(0, 96, 2)]:
            p = pred.clone()
            p[(conf < tc) | (sim < ts)] = oos
            acc = (p[ins] == labels[ins]).float().mean().item()
            rec = (p[out] == oos).float().mean().item() if out.any() else 0.0
            # With a recall floor: the best in-scope accuracy among thresholds that reach it
            # (ranked above every threshold that does not); without: the balanced mean.
            if floor > 0:
                score = acc + (1.0 if rec >= floor else rec - floor)
            else:
                score = (acc + rec) / 2
            if score > best[2] + 1e-9:
                best = (tc, ts, score)
    return best[0], best[1]


def pretrain(model, texts, tok, args, rnd):
    """Masked-language modelling on all the text at hand."""
    mask_id = tok.ids[kt.MASK]
    n_vocab = len(tok.vocab)
    steps = args.pretrain_epochs * math.ceil(len(texts) / args.batch)
    opt = Optimizer(model, args.lr, max(steps, 1))
    started = time.time()
    for epoch in range(args.pretrain_epochs):
        model.train()
        rnd.shuffle(texts)
        total, n = 0.0, 0
        for i in range(0, len(texts), args.batch):
            ids, mask, _ = encode_batch(texts[i:i + args.batch], tok, args.max_len)
            target = ids.clone()
            special = (ids < len(kt.SPECIALS))
            pick = (torch.rand(ids.shape) < 0.15) & ~special
            if pick.sum() == 0:
                continue
            target[~pick] = -100
            r = torch.rand(ids.shape)
            inp = ids.clone()
            inp[pick & (r < 0.8)] = mask_id
            rand_tok = torch.randint(len(kt.SPECIALS), n_vocab, ids.shape)
            swap = pick & (r >= 0.8) & (r < 0.9)
            inp[swap] = rand_tok[swap]
            loss = F.cross_entropy(model.mlm_logits(inp, mask).view(-1, n_vocab), target.view(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        log("pretrain epoch", n=f"{epoch + 1}/{args.pretrain_epochs}", mlm_loss=f"{total / max(n, 1):.3f}",
            elapsed=f"{time.time() - started:.0f}s")


def metrics(probs, labels, label_names, threshold, sim=None, sim_threshold=0.0):
    """Accuracy on in-scope examples, out-of-scope precision/recall, macro-F1 over all classes,
    expected calibration error (15 bins) of the top-1 confidence."""
    oos = label_names.index(OOS) if OOS in label_names else None
    conf, pred = probs.max(-1)
    pred = pred.clone()
    if oos is not None:
        pred[conf < threshold] = oos
        if sim is not None and sim_threshold > 0:
            pred[sim < sim_threshold] = oos
    y = labels
    res = {}
    ins = (y != oos) if oos is not None else torch.ones_like(y, dtype=torch.bool)
    res["accuracy"] = round((pred[ins] == y[ins]).float().mean().item(), 4) if ins.any() else 0.0
    if oos is not None and (y == oos).any():
        tp = ((pred == oos) & (y == oos)).sum().item()
        res["oos_recall"] = round(tp / (y == oos).sum().item(), 4)
        res["oos_precision"] = round(tp / max((pred == oos).sum().item(), 1), 4)
    f1s = []
    for c in range(len(label_names)):
        tp = ((pred == c) & (y == c)).sum().item()
        fp = ((pred == c) & (y != c)).sum().item()
        fn = ((pred != c) & (y == c)).sum().item()
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    res["macro_f1"] = round(sum(f1s) / max(len(f1s), 1), 4)
    correct = (probs.argmax(-1) == y).float()
    ece, bins = 0.0, 15
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.float().mean().item() * abs(conf[sel].mean().item() - correct[sel].mean().item())
    res["ece"] = round(ece, 4)
    res["examples"] = len(y)
    return res


def fit_temperature(logits, labels):
    best, best_nll = 1.0, float("inf")
    for i in range(1, 201):
        t = i * 0.025
        nll = F.cross_entropy(logits / t, labels).item()
        if nll < best_nll:
            best, best_nll = t, nll
    return best


def choose_threshold(probs, labels, names, objective):
    """The confidence below which a prediction becomes out_of_scope, chosen on validation
    data: 'balanced' maximises the mean of in-scope accuracy and out-of-scope recall,
    'accuracy' the accuracy over all examples."""
    if OOS not in names:
        return 0.0
    best, best_score = 0.0, -1.0
    for i in range(0, 100):
        th = i / 100
        m = metrics(probs, labels, names, th)
        if objective == "balanced" and "oos_recall" in m:
            score = (m["accuracy"] + m["oos_recall"]) / 2
        else:
            conf, pred = probs.max(-1)
            pred = pred.clone()
            pred[conf < th] = names.index(OOS)
            score = (pred == labels).float().mean().item()
        if score > best_score + 1e-9:
            best, best_score = th, score
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", "--intents", dest="train", default=os.path.join(ROOT, "training/data/intents.yaml"),
                    help="training examples: the product's intents YAML, or a CSV with columns text,intent[,language]")
    ap.add_argument("--val", default="", help="validation examples (default: hold out --val-frac of --train)")
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--test", default="", help="optional test file: its metrics go to model.json (never used for tuning)")
    ap.add_argument("--knowledge", default=os.path.join(ROOT, "retrieval/demo/knowledge.yaml"),
                    help="knowledge YAML whose phrasings train the sentence embedding ('' for none)")
    ap.add_argument("--extra-oos", default="", help="unlabelled sentences, one a line, used as out-of-scope examples")
    ap.add_argument("--extra-oos-per-epoch", type=int, default=2000)
    ap.add_argument("--oos-label", default="oos", help="the label of out-of-scope examples in the data")
    ap.add_argument("--out", default=os.path.join(ROOT, "models/intent"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--vocab-size", type=int, default=12000)
    ap.add_argument("--ngram-buckets", type=int, default=0, help="hashed character 3-5-gram features (0: off)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="masked-language-model epochs before training")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--piece-drop", type=float, default=0.1, help="augmentation: share of pieces dropped from an example")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--threshold-objective", choices=["balanced", "accuracy"], default="balanced")
    ap.add_argument("--oos-recall-floor", type=float, default=0.0,
                    help="choose the out-of-scope thresholds for the best in-scope accuracy at this validation recall")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--version", default="")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    rnd = random.Random(args.seed)
    started = time.time()
    try:
        examples = read_examples(args.train, args.oos_label)
        val = read_examples(args.val, args.oos_label) if args.val else None
        test = read_examples(args.test, args.oos_label) if args.test else None
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    train = examples
    if val is None:
        train, val = split(examples, args.val_frac, args.seed)
    kb_rows, kb_texts = load_knowledge(args.knowledge) if args.knowledge else ([], [])
    extra = read_lines(args.extra_oos) if args.extra_oos else []
    labels = sorted({r[1] for r in train} | ({OOS} if extra else set()))
    unknown = sorted({r[1] for r in val} - set(labels))
    if unknown:
        print(f"error: {args.val}: intents not in the training data: {', '.join(unknown[:10])}", file=sys.stderr)
        sys.exit(2)
    entries = sorted({r[1] for r in kb_rows})
    label_ids = {l: i for i, l in enumerate(labels)}
    entry_ids = {e: i for i, e in enumerate(entries)}
    log("data", intents=len(labels), train=len(train), val=len(val), knowledge_phrasings=len(kb_rows),
        extra_oos=len(extra))

    corpus = [r[0] for r in train] + [r[0] for r in kb_rows] + kb_texts + extra
    tok = kt.build_vocab(corpus, max_size=args.vocab_size)
    log("vocab", size=len(tok.vocab))

    model = Encoder(len(tok.vocab), len(labels), len(entries), args.hidden, args.layers,
                    args.heads, args.max_len, args.dropout, args.ngram_buckets)
    log("model", parameters=sum(p.numel() for p in model.parameters()))
    if args.pretrain_epochs:
        pretrain(model, [r[0] for r in train] + [r[0] for r in kb_rows] + kb_texts + extra, tok, args, rnd)

    per_epoch = len(train) + (args.extra_oos_per_epoch if extra else 0)
    steps = args.epochs * (math.ceil(per_epoch / args.batch) + math.ceil(len(kb_rows) / args.batch))
    opt = Optimizer(model, args.lr, max(steps, 1))
    yv = torch.tensor([label_ids[r[1]] for r in val])
    val_texts = [r[0] for r in val]
    for epoch in range(args.epochs):
        model.train()
        rows = [(r[0], label_ids[r[1]]) for r in train]
        if extra:
            rows += [(t, label_ids[OOS]) for t in oos_spans(extra, args.extra_oos_per_epoch, rnd)]
        rnd.shuffle(rows)
        total, n = 0.0, 0
        for i in range(0, len(rows), args.batch):
            chunk = rows[i:i + args.batch]
            ids, mask, ng = encode_batch([c[0] for c in chunk], tok, args.max_len, rnd, args.piece_drop, args.ngram_buckets)
            y = torch.tensor([c[1] for c in chunk])
            loss = F.cross_entropy(model(ids, mask, ng)[0], y, label_smoothing=args.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        if kb_rows:
            kb = kb_rows[:]
            rnd.shuffle(kb)
            for i in range(0, len(kb), args.batch):
                chunk = kb[i:i + args.batch]
                ids, mask, ng = encode_batch([c[0] for c in chunk], tok, args.max_len, rnd, args.piece_drop, args.ngram_buckets)
                y = torch.tensor([entry_ids[c[1]] for c in chunk])
                p = model.pooled(ids, mask, ng)
                loss = F.cross_entropy(model.entry(model.drop(p)), y, label_smoothing=args.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
        # progress every epoch: validation accuracy so far and the time left
        vl = logits_of(model, val_texts, tok, args.max_len, args.ngram_buckets)
        m = metrics(vl.softmax(-1), yv, labels, 0.0)
        el = time.time() - started
        log("epoch", n=f"{epoch + 1}/{args.epochs}", loss=f"{total / max(n, 1):.4f}", val_acc=m["accuracy"],
            val_oos_recall=m.get("oos_recall", "-"), elapsed=f"{el:.0f}s",
            eta=f"{el / (epoch + 1) * (args.epochs - epoch - 1):.0f}s")

    vl = logits_of(model, val_texts, tok, args.max_len, args.ngram_buckets)
    temp = fit_temperature(vl, yv)
    probs = (vl / temp).softmax(-1)
    cents = centroids_of(embeddings_of(model, [r[0] for r in train], tok, args.max_len, args.ngram_buckets),
                         torch.tensor([label_ids[r[1]] for r in train]), labels)
    sim_threshold = 0.0
    if OOS in labels and args.threshold_objective == "balanced":
        vsim = (embeddings_of(model, val_texts, tok, args.max_len, args.ngram_buckets) @ cents.t()).max(-1).values
        threshold, sim_threshold = choose_thresholds(probs, vsim, yv, labels, args.oos_recall_floor)
    else:
        vsim = None
        threshold = choose_threshold(probs, yv, labels, args.threshold_objective)
    val_m = metrics(probs, yv, labels, threshold, vsim, sim_threshold)
    log("calibrated", temperature=temp, threshold=threshold, sim_threshold=sim_threshold,
        **{"val_" + k: v for k, v in val_m.items()})
    test_m = None
    if test:
        test_texts = [r[0] for r in test]
        yt = torch.tensor([label_ids.get(r[1], label_ids.get(OOS, 0)) for r in test])
        tp = (logits_of(model, test_texts, tok, args.max_len, args.ngram_buckets) / temp).softmax(-1)
        tsim = (embeddings_of(model, test_texts, tok, args.max_len, args.ngram_buckets) @ cents.t()).max(-1).values
        test_m = metrics(tp, yt, labels, threshold, tsim, sim_threshold)
        log("test (reported, never tuned on)", **test_m)

    os.makedirs(args.out, exist_ok=True)
    model.eval()
    ids, mask, ng = encode_batch(["你好 hello"], tok, args.max_len, buckets=args.ngram_buckets)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "logits": {0: "batch"}, "embedding": {0: "batch"}}
    names_in = ["input_ids", "attention_mask"] + (["ngram_ids"] if args.ngram_buckets else [])
    names_out = ["logits", "embedding"]
    inputs = (ids, mask, ng) if args.ngram_buckets else (ids, mask)
    if args.ngram_buckets:
        axes["ngram_ids"] = {0: "batch", 1: "grams"}
    if sim_threshold > 0:
        exp = ExportSim(model, cents[[i for i, n in enumerate(labels) if n != OOS]], bool(args.ngram_buckets))
        names_out.append("intent_similarity")
        axes["intent_similarity"] = {0: "batch"}
    else:
        exp = ExportNgrams(model) if args.ngram_buckets else Export(model)
    torch.onnx.export(exp, inputs, os.path.join(args.out, "model.onnx"), input_names=names_in,
                      output_names=names_out, dynamic_axes=axes, opset_version=14)
    tok.save(os.path.join(args.out, "vocab.txt"))
    with open(os.path.join(args.out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(labels, f, ensure_ascii=False, indent=1)
    h = hashlib.sha256()
    for p in (args.train, args.val, args.knowledge, args.extra_oos):
        if p:
            with open(p, "rb") as f:
                h.update(f.read())
    meta = {
        "version": args.version or time.strftime("intent-%Y%m%d"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data_sha256": h.hexdigest(),
        "max_len": args.max_len, "hidden": args.hidden, "layers": args.layers, "heads": args.heads,
        "vocab_size": len(tok.vocab), "ngram_buckets": args.ngram_buckets, "epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs,
        "seed": args.seed, "temperature": temp, "threshold": threshold, "similarity_threshold": sim_threshold,
        "out_of_scope": OOS if OOS in labels else "",
        "train_seconds": round(time.time() - started),
        "metrics": {"val": val_m, "test": test_m, "train_examples": len(train)},
    }
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    write_golden(tok, os.path.join(args.out, "tokenizer_golden.jsonl"), args.max_len, args.ngram_buckets or 4096,
                 [r[0] for r in train[::max(1, len(train) // 60)]])
    log("exported", out=args.out, seconds=f"{time.time() - started:.0f}")


GOLDEN = [
    "", "   ", "你好", "我想退货，订单号 A-1029 还没到！", "Where is my order #12345?",
    "ＡＢＣ，ｏｋ！全角标点：（测试）", "Café naïve résumé", "🙂👍 thanks!!", "转人工 talk to a human please",
    "don't can't it's", "e-mail: li.ming@example.com, ¥59.90", "\t\n多个\u3000空白\r\n", "ＡＢＣ１２３",
    "x" * 150, "退" * 120, "unknownwordzzqx", "İstanbul ß ﬁ", "a\u0000b\u200bc",
    "internationalization of refunds", "我的order到哪了？", "Ｗｈｅｒｅ　ｉｓ　ｍｙ　ｐａｃｋａｇｅ",
]


def write_golden(tok, path, max_len, buckets, extra):
    with open(path, "w", encoding="utf-8") as f:
        for t in GOLDEN + extra:
            f.write(json.dumps({"text": t, "tokens": tok.tokenize(t), "ids": tok.encode(t, max_len),
                                "buckets": buckets, "ngrams": kt.ngram_ids(t, buckets)},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
