#!/usr/bin/python3
"""Train Kefu's sentence encoder for knowledge retrieval and export it to ONNX.

    # the shipped model:
    /usr/bin/python3 training/train_encoder.py --out models/encoder --version encoder-0.1.0 --clinc ../shared/datasets/clinc150/data_full.json
    # an encoder for your own FAQ (a file kefu kb import reads):
    /usr/bin/python3 training/train_encoder.py --knowledge my_faq.jsonl --out var/my-encoder --version my-1

A small BERT-architecture encoder (WordPiece embeddings + positions, transformer layers, masked
mean pooling, plus a bag of pieces and a bag of hashed character n-grams, which carry typos,
unseen words and Chinese) trained with a supervised contrastive loss (InfoNCE with in-batch
negatives and a temperature): phrasings of the same group are pulled together, every other
phrasing in the batch is pushed away. The groups:

  - the knowledge base (--knowledge: the demo's YAML, or a `kefu kb import` JSONL/CSV file):
    each entry's question, title, alternative phrasings and the sentences of its answer, in all
    its languages, are one group (the search ranks phrasings of every language, and customers
    ask with the answer's words);
  - the intents (--intents): each intent's examples are one group (out_of_scope is not one:
    its examples are only negatives);
  - optionally CLINC150's training split (--clinc data_full.json): 150 English groups.

Each batch holds groups of one source, so that an intent and the knowledge entry it talks
about are never each other's negatives. Every phrasing is augmented each time it is drawn:
characters dropped, swapped or repeated (typos), word pieces and n-grams dropped.

Validation, never trained on: the held-out intent test set (--intents-test) classified by each
message's nearest intent example, and with --holdout 4 one alternative phrasing of every
(entry, language) with at least four, searched for among the rest (recall@1/@5, as the
retrieval store ranks). By default every phrasing trains: they are what the store indexes.

The export, in --out: model.onnx (input_ids, attention_mask[, ngram_ids] → embedding, L2-
normalised), vocab.txt, model.json (version, max_len, dims, data hash, metrics, train_seconds)
and tokenizer_golden.jsonl, which nlu's Go tests compare with the Go tokenizer.
"""
import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kefu_tokenizer as kt  # noqa: E402
import train_intent as ti  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = ti.log
OOS = ti.OOS


# ----------------------------------------------------------------------------- data

class Group:
    """Phrasings that mean the same: [(text, language)]."""

    def __init__(self, name, source):
        self.name, self.source, self.texts = name, source, []

    def add(self, text, lang):
        text = str(text).strip()
        if text and (text, lang) not in self.texts:
            self.texts.append((text, lang))


ANSWER_SPLIT = re.compile(r"(?<=[。！？；!?;])|(?<=[.])\s+")


def sentences(text, shortest=6):
    """The sentences of an answer that are at least shortest characters long."""
    return [x.strip() for x in ANSWER_SPLIT.split(text) if len(x.strip()) >= shortest]


def load_knowledge(path):
    """One group per entry key (all languages), and the answers: [(group, language, text)].
    The file is the demo's YAML, or what kefu kb import reads: JSONL or CSV rows of id,
    question, answer and optionally language (default en), title, alternatives (a list; in CSV
    separated by |)."""
    if path.endswith((".jsonl", ".csv")):
        return load_import(path)
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ti.DataError(f"{path}: {e.strerror}")
    except yaml.MarkedYAMLError as e:
        raise ti.DataError(f"{path}:{e.problem_mark.line + 1 if e.problem_mark else 0}: {e.problem}")
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise ti.DataError(f"{path}:1: want a mapping with a list under 'entries'")
    groups, answers = [], []
    for i, e in enumerate(doc["entries"], start=1):
        if not isinstance(e, dict) or not e.get("key"):
            raise ti.DataError(f"{path}: entry #{i} has no key")
        g = Group("kb:" + str(e["key"]), "kb")
        for lang, tr in e.items():
            if lang == "key" or not isinstance(tr, dict):
                continue
            # The store embeds the question, the title and the alternates: so do we.
            for q in [tr.get("question"), tr.get("title")] + list(tr.get("alternates") or []):
                if q:
                    g.add(q, lang)
            if tr.get("answer"):
                answers.append((g, lang, str(tr["answer"])))
        if len(g.texts) >= 2:
            groups.append(g)
    if not groups:
        raise ti.DataError(f"{path}: no entry has two phrasings")
    return groups, answers


def load_import(path):
    import csv
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ti.DataError(f"{path}: {e}")
    rows = []
    if path.endswith(".csv"):
        for n, r in enumerate(csv.DictReader(text.splitlines()), start=2):
            r = {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
            r["alternatives"] = [a.strip() for a in r.get("alternatives", "").split("|") if a.strip()]
            rows.append((n, r))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except ValueError as e:
                    raise ti.DataError(f"{path}:{n}: {e}")
    by, answers = {}, []
    for n, r in rows:
        if not isinstance(r, dict) or not r.get("id") or not r.get("question"):
            raise ti.DataError(f"{path}:{n}: want an id and a question")
        g = by.setdefault(str(r["id"]), Group("kb:" + str(r["id"]), "kb"))
        lang = r.get("language") or "en"
        for q in [r["question"], r.get("title")] + list(r.get("alternatives") or []):
            if q:
                g.add(q, lang)
        if r.get("answer"):
            answers.append((g, lang, str(r["answer"])))
    groups = [g for _, g in sorted(by.items()) if len(g.texts) >= 2]
    if not groups:
        raise ti.DataError(f"{path}: no entry has two phrasings (question, title, alternatives)")
    return groups, answers


def load_intents(path):
    """One group per intent (all languages); out_of_scope examples come back as negatives."""
    rows = ti.read_examples(path, "oos")
    by, negatives = {}, []
    for text, label, lang, _ in rows:
        if label == OOS:
            negatives.append((text, lang))
            continue
        by.setdefault(label, Group("intent:" + label, "intent")).add(text, lang)
    return [g for _, g in sorted(by.items()) if len(g.texts) >= 2], negatives


def load_clinc(path):
    """CLINC150's training split (read in place, never copied): one English group per intent."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ti.DataError(f"{path}: {e}")
    by = {}
    for text, intent in data["train"]:
        by.setdefault(intent, Group("clinc:" + intent, "clinc")).add(text, "en")
    return [g for _, g in sorted(by.items()) if len(g.texts) >= 2]


def link_intents(kb, intents):
    """Moves the examples of every intent whose name is a knowledge key (underscores read as
    hyphens) into that entry's group; returns the intents left."""
    by_key = {g.name[len("kb:"):].replace("_", "-"): g for g in kb}
    left = []
    for g in intents:
        entry = by_key.get(g.name[len("intent:"):].replace("_", "-"))
        if entry is None:
            left.append(g)
            continue
        for text, lang in g.texts:
            entry.add(text, lang)
    return left


def hold_out(groups, min_size, rnd):
    """Takes one phrasing (never the first, the question) out of every (group, language) with
    at least min_size phrasings: [(text, language, group name)]."""
    out = []
    for g in groups:
        for lang in sorted({l for _, l in g.texts}):
            mine = [t for t in g.texts if t[1] == lang]
            if len(mine) < min_size:
                continue
            pick = rnd.choice(mine[1:])
            g.texts.remove(pick)
            out.append((pick[0], lang, g.name))
    return out


# ----------------------------------------------------------------------------- augmentation

QWERTY = "qwertyuiop asdfghjkl zxcvbnm".split()


def neighbour(ch, rnd):
    for row in QWERTY:
        i = row.find(ch)
        if i >= 0:
            j = i + rnd.choice((-1, 1))
            if 0 <= j < len(row):
                return row[j]
    return ch


def typo(text, rnd, rate):
    """Drops, swaps, repeats or mistypes about rate of the characters (at least one edit when
    any is drawn), never emptying the text."""
    chars = list(text)
    if len(chars) < 3 or rnd.random() >= rate * 4:
        return text
    edits = max(1, int(round(len(chars) * rate)))
    for _ in range(edits):
        if len(chars) < 3:
            break
        i = rnd.randrange(len(chars))
        op = rnd.random()
        if op < 0.4:
            del chars[i]
        elif op < 0.6 and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op < 0.8:
            chars.insert(i, chars[i])
        else:
            chars[i] = neighbour(chars[i], rnd)
    return "".join(chars)


# ----------------------------------------------------------------------------- model

class SentenceEncoder(nn.Module):
    """train_intent's encoder without heads: the pooled state is the sentence embedding."""

    def __init__(self, vocab, hidden, layers, heads, max_len, drop, ngram_buckets):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.ngram = nn.Embedding(ngram_buckets + 1, hidden, padding_idx=0, sparse=True) if ngram_buckets else None
        self.pos = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(drop)
        self.layers = nn.ModuleList([ti.Layer(hidden, heads, hidden * 4, drop) for _ in range(layers)])
        # The mean embedding of the training texts, taken off every embedding after training
        # (fit_center): contrastive training leaves all vectors in a narrow cone, where even
        # unrelated sentences have cosines near 0.8; centred, they fall near 0, and a fixed
        # answer threshold on the cosine means something.
        self.register_buffer("center", torch.zeros(hidden))

    def forward(self, ids, mask, ngrams=None):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        emb = self.tok(ids)
        x = self.drop(self.ln(emb + self.pos(pos)))
        bias = ((1.0 - mask.to(torch.float32)) * -10000.0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        m = mask.to(torch.float32)
        w = m.unsqueeze(-1) / m.sum(1, keepdim=True).clamp(min=1.0).unsqueeze(-1)
        p = (x * w).sum(1) + (emb * w).sum(1)  # contextual mean + bag of pieces
        if self.ngram is not None and ngrams is not None:
            nm = (ngrams > 0).to(torch.float32)
            nw = nm.unsqueeze(-1) / nm.sum(1, keepdim=True).clamp(min=1.0).unsqueeze(-1)
            p = p + (self.ngram(ngrams) * nw).sum(1)  # bag of character n-grams
        return F.normalize(F.normalize(p, dim=-1) - self.center, dim=-1)


class Export(nn.Module):
    """What ONNX sees: input_ids, attention_mask → embedding."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, input_ids, attention_mask):
        return self.enc(input_ids, attention_mask)


class ExportNgrams(Export):
    """With character n-grams: input_ids, attention_mask, ngram_ids → embedding."""

    def forward(self, input_ids, attention_mask, ngram_ids):
        return self.enc(input_ids, attention_mask, ngram_ids)


# ----------------------------------------------------------------------------- training

def supcon(emb, labels, temperature):
    """Supervised contrastive loss: each phrasing against every other in the batch, its group's
    phrasings the positives."""
    sim = emb @ emb.t() / temperature
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = pos.any(1)
    loss = -(logp * pos).sum(1)[has] / pos.sum(1)[has]
    return loss.mean()


@torch.no_grad()
def embed(model, texts, tok, args):
    model.eval()
    out = torch.zeros(len(texts), args.hidden)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in range(0, len(order), 256):
        idx = order[i:i + 256]
        ids, mask, ng = ti.encode_batch([texts[j] for j in idx], tok, args.max_len, buckets=args.ngram_buckets)
        out[idx] = model(ids, mask, ng)
    return out


@torch.no_grad()
def fit_center(model, texts, tok, args):
    """Sets the model's centre to the mean embedding of texts (see SentenceEncoder)."""
    model.center.zero_()
    model.center.copy_(embed(model, texts, tok, args).mean(0))


def retrieval_metrics(model, tok, args, index, queries):
    """Recall@1/@5 and MRR@10 of queries [(text, lang, group)] against index [(text, group)],
    a group scored by its best phrasing, as the retrieval store ranks entries."""
    if not queries:
        return None
    names = sorted({g for _, g in index})
    gid = {g: i for i, g in enumerate(names)}
    ie = embed(model, [t for t, _ in index], tok, args)
    qe = embed(model, [q[0] for q in queries], tok, args)
    sims = qe @ ie.t()
    owner = torch.tensor([gid[g] for _, g in index])
    best = torch.stack([sims[:, owner == i].max(1).values for i in range(len(names))], dim=1)
    rank = best.argsort(dim=1, descending=True)
    r1 = r5 = mrr = 0.0
    for i, q in enumerate(queries):
        pos = (rank[i] == gid[q[2]]).nonzero().item()
        r1 += pos == 0
        r5 += pos < 5
        mrr += 1 / (pos + 1) if pos < 10 else 0
    n = len(queries)
    return {"recall@1": round(r1 / n, 4), "recall@5": round(r5 / n, 4), "mrr@10": round(mrr / n, 4), "queries": n}


class Batcher:
    """Batches of up to args.groups groups of one source, args.per_group phrasings each,
    augmented afresh every time."""

    def __init__(self, sources, negatives, tok, args, rnd):
        self.sources = {k: v for k, v in sources.items() if v}
        self.negatives, self.tok, self.args, self.rnd = negatives, tok, args, rnd
        weights = {"kb": args.kb_weight, "intent": args.intent_weight, "clinc": args.clinc_weight}
        self.names = sorted(self.sources)
        self.weights = [weights[n] for n in self.names]

    def draw(self):
        a, rnd = self.args, self.rnd
        src = rnd.choices(self.names, self.weights)[0]
        pool = self.sources[src]
        groups = rnd.sample(pool, min(a.groups, len(pool)))
        texts, labels = [], []
        for gi, g in enumerate(groups):
            k = min(a.per_group, len(g.texts))
            for text, lang in rnd.sample(g.texts, k):
                texts.append(typo(text, rnd, a.typo_rate))
                labels.append(gi)
        if self.negatives and src == "intent" and a.negatives_per_batch:
            for text, lang in rnd.sample(self.negatives, min(a.negatives_per_batch, len(self.negatives))):
                texts.append(typo(text, rnd, a.typo_rate))
                labels.append(-1 - len(labels))  # a group of its own: a negative for everyone
        ids, mask, ng = ti.encode_batch(texts, self.tok, a.max_len, rnd, a.piece_drop, a.ngram_buckets)
        return src, ids, mask, ng, torch.tensor(labels)


def data_hash(paths):
    h = hashlib.sha256()
    for p in paths:
        if p:
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--knowledge", default=os.path.join(ROOT, "retrieval/demo/knowledge.yaml"),
                    help="knowledge YAML, or a kefu kb import file (.jsonl, .csv): each entry's phrasings are one group ('' for none)")
    ap.add_argument("--intents", default=os.path.join(ROOT, "training/data/intents.yaml"),
                    help="intents YAML or CSV (text,intent[,language]): each intent's examples are one group ('' for none)")
    ap.add_argument("--intents-test", default=os.path.join(ROOT, "training/data/intents_test.csv"),
                    help="held-out intent examples, classified by their nearest training example for the metrics only ('' for none)")
    ap.add_argument("--clinc", default="", help="CLINC150 data_full.json: its training split adds 150 English groups")
    ap.add_argument("--out", default=os.path.join(ROOT, "models/encoder"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--vocab-size", type=int, default=12000)
    ap.add_argument("--ngram-buckets", type=int, default=8192, help="hashed character 3-5-gram features (0: off)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--groups", type=int, default=32, help="groups per batch")
    ap.add_argument("--per-group", type=int, default=4, help="phrasings drawn from each group of a batch")
    ap.add_argument("--kb-weight", type=float, default=1.0, help="share of batches from the knowledge base")
    ap.add_argument("--intent-weight", type=float, default=1.0, help="share of batches from the intents")
    ap.add_argument("--clinc-weight", type=float, default=1.0, help="share of batches from CLINC150")
    ap.add_argument("--negatives-per-batch", type=int, default=8, help="out_of_scope examples added to intent batches")
    ap.add_argument("--temperature", type=float, default=0.05, help="of the contrastive loss")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--piece-drop", type=float, default=0.1, help="augmentation: share of pieces and n-grams dropped")
    ap.add_argument("--typo-rate", type=float, default=0.05, help="augmentation: share of characters dropped, swapped, repeated or mistyped")
    ap.add_argument("--answers", type=int, default=1, help="1: an entry's answer sentences join its group (0: the answers only add to the vocabulary)")
    ap.add_argument("--link-intents", type=int, default=0,
                    help="1: an intent whose name is a knowledge key (_ as -) joins that entry's group")
    ap.add_argument("--center", type=int, default=1, help="1: take the training texts' mean embedding off every embedding (0: off)")
    ap.add_argument("--holdout", type=int, default=0,
                    help="hold one phrasing out of every (entry, language) with at least this many, for validation "
                         "(0: none, every phrasing trains; 4 measures how well the model finds unseen wordings)")
    ap.add_argument("--eval-every", type=int, default=500, help="steps between validation runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--version", default="",
                    help="model version, which names its vector space: a retrained model needs a new one "
                         "(default: encoder-DATE-TIME)")
    return ap.parse_args(argv)


def train(args):
    """Trains a model; returns the model, its tokenizer, the validation metrics, the start time
    and a sample of the training texts (for the golden vectors)."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    rnd = random.Random(args.seed)
    started = time.time()
    kb, answers = load_knowledge(args.knowledge) if args.knowledge else ([], [])
    intents, negatives = load_intents(args.intents) if args.intents else ([], [])
    clinc = load_clinc(args.clinc) if args.clinc else []
    intent_test = [(t, lang, "intent:" + label) for t, label, lang, _ in ti.read_examples(args.intents_test, "oos")
                   if label != OOS] if args.intents_test and intents else []
    val = hold_out(kb, args.holdout, random.Random(args.seed)) if args.holdout else []
    if args.answers:  # after the hold-out: it holds out phrasings only
        for g, lang, text in answers:
            for x in sentences(text):
                g.add(x, lang)
    all_intents = intents
    if args.link_intents:
        intents = link_intents(kb, intents)
        log("linked intents to knowledge entries", linked=len(all_intents) - len(intents))
    if not kb and not intents and not clinc:
        raise ti.DataError("no training data: give --knowledge, --intents or --clinc")
    log("data", kb_groups=len(kb), kb_phrasings=sum(len(g.texts) for g in kb), intents=len(intents),
        intent_examples=sum(len(g.texts) for g in intents), oos_negatives=len(negatives),
        clinc_groups=len(clinc), held_out=len(val), intent_test=len(intent_test))

    corpus_texts = [t for g in kb + intents + clinc for t, _ in g.texts] + [t for t, _ in negatives]
    corpus = corpus_texts + [a[2] for a in answers]
    tok = kt.build_vocab(corpus, max_size=args.vocab_size)
    log("vocab", size=len(tok.vocab))
    model = SentenceEncoder(len(tok.vocab), args.hidden, args.layers, args.heads, args.max_len, args.dropout,
                            args.ngram_buckets)
    log("model", parameters=sum(p.numel() for p in model.parameters()))

    kb_index = [(t, g.name) for g in kb for t, _ in g.texts]
    intent_index = [(t, g.name) for g in all_intents for t, _ in g.texts]

    def validate():
        m = {}
        if val:
            m["kb_heldout"] = retrieval_metrics(model, tok, args, kb_index, val)
        if intent_test:
            m["intent_test_nearest"] = retrieval_metrics(model, tok, args, intent_index, intent_test)
        return m

    batcher = Batcher({"kb": kb, "intent": intents, "clinc": clinc}, negatives, tok, args, rnd)
    opt = ti.Optimizer(model, args.lr, max(args.steps, 1))
    total, n, per_src = 0.0, 0, {}
    for step in range(1, args.steps + 1):
        model.train()
        src, ids, mask, ng, labels = batcher.draw()
        loss = supcon(model(ids, mask, ng), labels, args.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, n = total + loss.item(), n + 1
        per_src[src] = per_src.get(src, 0) + 1
        if step % args.eval_every == 0 or step == args.steps:
            el = time.time() - started
            kv = {"step": f"{step}/{args.steps}", "loss": f"{total / max(n, 1):.4f}",
                  "batches": ",".join(f"{k}:{v}" for k, v in sorted(per_src.items()))}
            for name, res in validate().items():
                if res:
                    kv[name + "_r@1"], kv[name + "_r@5"] = res["recall@1"], res["recall@5"]
            log("train", **kv, elapsed=f"{el:.0f}s", eta=f"{el / step * (args.steps - step):.0f}s")
            total, n, per_src = 0.0, 0, {}
    if args.center:
        fit_center(model, corpus_texts, tok, args)
        log("centred", norm_of_mean=f"{model.center.norm().item():.3f}")
    metrics = validate()
    metrics["train_phrasings"] = {"kb": sum(len(g.texts) for g in kb), "intent": sum(len(g.texts) for g in intents),
                                  "clinc": sum(len(g.texts) for g in clinc)}
    return model, tok, metrics, started, corpus_texts[::max(1, len(corpus_texts) // 40)]


def export(model, tok, args, metrics, started, golden=()):
    """Writes the model folder; golden are more texts for the tokenizer's golden vectors."""
    os.makedirs(args.out, exist_ok=True)
    model.eval()
    ids, mask, ng = ti.encode_batch(["你好 hello"], tok, args.max_len, buckets=args.ngram_buckets)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}
    names_in = ["input_ids", "attention_mask"]
    if args.ngram_buckets:
        names_in.append("ngram_ids")
        axes["ngram_ids"] = {0: "batch", 1: "grams"}
        exp, inputs = ExportNgrams(model), (ids, mask, ng)
    else:
        exp, inputs = Export(model), (ids, mask)
    torch.onnx.export(exp, inputs, os.path.join(args.out, "model.onnx"), input_names=names_in,
                      output_names=["embedding"], dynamic_axes=axes, opset_version=14)
    tok.save(os.path.join(args.out, "vocab.txt"))
    meta = {
        "version": args.version or time.strftime("encoder-%Y%m%d-%H%M%S", time.gmtime(started)),
        "kind": "encoder",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data_sha256": data_hash([args.knowledge, args.intents, args.clinc]),
        "max_len": args.max_len, "dims": args.hidden, "hidden": args.hidden, "layers": args.layers,
        "heads": args.heads, "vocab_size": len(tok.vocab), "ngram_buckets": args.ngram_buckets,
        "steps": args.steps, "groups": args.groups, "per_group": args.per_group,
        "loss_temperature": args.temperature, "seed": args.seed,
        "sources": {"knowledge": os.path.relpath(args.knowledge, ROOT) if args.knowledge else "",
                    "intents": os.path.relpath(args.intents, ROOT) if args.intents else "",
                    "clinc": os.path.basename(args.clinc) if args.clinc else ""},
        "train_seconds": round(time.time() - started),
        "metrics": metrics,
    }
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    ti.write_golden(tok, os.path.join(args.out, "tokenizer_golden.jsonl"), args.max_len, args.ngram_buckets or 4096,
                    list(golden))
    log("exported", out=args.out, seconds=f"{time.time() - started:.0f}")


def main():
    args = parse_args()
    try:
        model, tok, metrics, started, golden = train(args)
    except ti.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    log("validation (held out, never trained on)", **{k: json.dumps(v) for k, v in metrics.items()})
    export(model, tok, args, metrics, started, golden)


if __name__ == "__main__":
    main()
