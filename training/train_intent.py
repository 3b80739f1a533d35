#!/usr/bin/python3
"""Train Kefu's intent model and sentence encoder, and export it to ONNX.

    /usr/bin/python3 training/train_intent.py --out models/intent

One small BERT-architecture encoder with two heads, trained together:
  * intent head: logits over the intents of training/data/intents.yaml (ONNX output `logits`);
  * knowledge head: which knowledge entry a question or phrasing belongs to, over
    retrieval/demo/knowledge.yaml, with all languages of an entry sharing one label, so that
    Chinese and English phrasings of one question land close together.
The mean-pooled, L2-normalised sentence vector is the ONNX output `embedding`, which
retrieval/ stores in pgvector. The temperature (fitted on the validation split) and the
out-of-scope threshold (chosen on the validation split) go to model.json with the metrics.
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kefu_tokenizer as kt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg, **kv):
    extra = " ".join(f"{k}={v}" for k, v in kv.items())
    print(f"{time.strftime('%H:%M:%S')} {msg} {extra}".rstrip(), flush=True)


# ----------------------------------------------------------------------------- data

def load_intents(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    rows = []
    for it in doc["intents"]:
        for lang, exs in it["examples"].items():
            for e in exs:
                rows.append((str(e), it["name"], lang))
    return rows


def load_csv(path):
    import csv
    rows = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append((r["text"], r["intent"], r.get("language", "")))
    return rows


def load_knowledge(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    rows, texts = [], []
    for e in doc["entries"]:
        for lang, tr in e.items():
            if lang == "key":
                continue
            for q in [tr["question"], tr["title"]] + list(tr.get("alternates", [])):
                rows.append((str(q), e["key"], lang))
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
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d) + bias
        att = self.drop(att.softmax(-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.drop(self.out(y)))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))


class Encoder(nn.Module):
    def __init__(self, vocab, n_intents, n_entries, hidden, layers, heads, max_len, drop):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(drop)
        self.layers = nn.ModuleList([Layer(hidden, heads, hidden * 4, drop) for _ in range(layers)])
        self.intent = nn.Linear(hidden, n_intents)
        self.entry = nn.Linear(hidden, n_entries)

    def pooled(self, ids, mask):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        m = mask.to(torch.float32)
        w = m.unsqueeze(-1) / m.sum(1, keepdim=True).clamp(min=1.0).unsqueeze(-1)
        bag = (self.tok(ids) * w).sum(1)  # bag of pieces: strong on small data
        x = self.drop(self.ln(self.tok(ids) + self.pos(pos)))
        bias = ((1.0 - m) * -10000.0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return (x * w).sum(1) + bag

    def forward(self, ids, mask):
        p = self.pooled(ids, mask)
        return self.intent(self.drop(p)), F.normalize(p, dim=-1)


class Export(nn.Module):
    """What ONNX sees: input_ids, attention_mask → logits, embedding."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, input_ids, attention_mask):
        p = self.enc.pooled(input_ids, attention_mask)
        return self.enc.intent(p), F.normalize(p, dim=-1)


# ----------------------------------------------------------------------------- training

def batches(rows, tok, label_ids, max_len, bs, rnd, augment):
    idx = list(range(len(rows)))
    rnd.shuffle(idx)
    for i in range(0, len(idx), bs):
        chunk = [rows[j] for j in idx[i:i + bs]]
        yield encode_batch([r[0] for r in chunk], tok, max_len, rnd if augment else None), \
            torch.tensor([label_ids[r[1]] for r in chunk])


def encode_batch(texts, tok, max_len, rnd=None):
    seqs = []
    for t in texts:
        ids = tok.encode(t, max_len)
        if rnd is not None and len(ids) > 4 and rnd.random() < 0.3:
            del ids[rnd.randrange(1, len(ids) - 1)]  # drop one piece: robustness to typos
        seqs.append(ids)
    t = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def logits_of(model, texts, tok, max_len):
    model.eval()
    out = []
    for i in range(0, len(texts), 128):
        ids, mask = encode_batch(texts[i:i + 128], tok, max_len)
        out.append(model(ids, mask)[0])
    return torch.cat(out) if out else torch.zeros(0)


def fit_temperature(logits, labels):
    best, best_nll = 1.0, float("inf")
    for i in range(1, 101):
        t = i * 0.05
        nll = F.cross_entropy(logits / t, labels).item()
        if nll < best_nll:
            best, best_nll = t, nll
    return best


def choose_threshold(probs, labels, oos_id):
    """The confidence below which a prediction becomes out_of_scope, picked for accuracy."""
    best, best_acc = 0.0, -1.0
    conf, pred = probs.max(-1)
    for i in range(0, 96):
        th = i / 100
        p = pred.clone()
        if oos_id is not None:
            p[conf < th] = oos_id
        acc = (p == labels).float().mean().item()
        if acc > best_acc + 1e-9:
            best, best_acc = th, acc
    return best, best_acc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", default=os.path.join(ROOT, "training/data/intents.yaml"),
                    help="intents YAML, or a CSV with columns text,intent[,language]")
    ap.add_argument("--knowledge", default=os.path.join(ROOT, "retrieval/demo/knowledge.yaml"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models/intent"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--val", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--version", default="")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rnd = random.Random(args.seed)

    intents = load_csv(args.intents) if args.intents.endswith(".csv") else load_intents(args.intents)
    kb_rows, kb_texts = load_knowledge(args.knowledge)
    labels = sorted({r[1] for r in intents})
    entries = sorted({r[1] for r in kb_rows})
    label_ids = {l: i for i, l in enumerate(labels)}
    entry_ids = {e: i for i, e in enumerate(entries)}
    oos_id = label_ids.get("out_of_scope")
    train, val = split(intents, args.val, args.seed)
    log("data", intents=len(labels), examples=len(intents), train=len(train), val=len(val),
        knowledge_phrasings=len(kb_rows))

    tok = kt.build_vocab([r[0] for r in intents] + [r[0] for r in kb_rows] + kb_texts)
    log("vocab", size=len(tok.vocab))

    model = Encoder(len(tok.vocab), len(labels), len(entries), args.hidden, args.layers,
                    args.heads, args.max_len, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * (math.ceil(len(train) / args.batch) + math.ceil(len(kb_rows) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    started = time.time()
    for epoch in range(args.epochs):
        model.train()
        total, n = 0.0, 0
        for (ids, mask), y in batches(train, tok, label_ids, args.max_len, args.batch, rnd, True):
            loss = F.cross_entropy(model(ids, mask)[0], y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
        for (ids, mask), y in batches(kb_rows, tok, entry_ids, args.max_len, args.batch, rnd, True):
            p = model.pooled(ids, mask)
            loss = F.cross_entropy(model.entry(model.drop(p)), y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            vl = logits_of(model, [r[0] for r in val], tok, args.max_len)
            acc = (vl.argmax(-1) == torch.tensor([label_ids[r[1]] for r in val])).float().mean().item() if val else 0
            log("epoch", n=epoch + 1, loss=f"{total / max(n, 1):.4f}", val_acc=f"{acc:.4f}",
                elapsed=f"{time.time() - started:.0f}s")

    yv = torch.tensor([label_ids[r[1]] for r in val])
    vl = logits_of(model, [r[0] for r in val], tok, args.max_len)
    temp = fit_temperature(vl, yv) if val else 1.0
    probs = (vl / temp).softmax(-1)
    threshold, val_acc = choose_threshold(probs, yv, oos_id) if val else (0.0, 0.0)
    log("calibrated", temperature=temp, threshold=threshold, val_acc=f"{val_acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    model.eval()
    ids, mask = encode_batch(["你好 hello"], tok, args.max_len)
    torch.onnx.export(Export(model), (ids, mask), os.path.join(args.out, "model.onnx"),
                      input_names=["input_ids", "attention_mask"], output_names=["logits", "embedding"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=14)
    tok.save(os.path.join(args.out, "vocab.txt"))
    with open(os.path.join(args.out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(labels, f, ensure_ascii=False, indent=1)
    h = hashlib.sha256()
    for p in (args.intents, args.knowledge):
        with open(p, "rb") as f:
            h.update(f.read())
    meta = {
        "version": args.version or time.strftime("intent-%Y%m%d"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data_sha256": h.hexdigest(),
        "max_len": args.max_len, "hidden": args.hidden, "layers": args.layers, "heads": args.heads,
        "epochs": args.epochs, "seed": args.seed,
        "temperature": temp, "threshold": threshold, "out_of_scope": "out_of_scope" if oos_id is not None else "",
        "metrics": {"val_accuracy": round(val_acc, 4), "val_examples": len(val), "train_examples": len(train)},
    }
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    write_golden(tok, os.path.join(args.out, "tokenizer_golden.jsonl"), args.max_len,
                 [r[0] for r in intents[::7]])
    log("exported", out=args.out, seconds=f"{time.time() - started:.0f}")


GOLDEN = [
    "", "   ", "你好", "我想退货，订单号 A-1029 还没到！", "Where is my order #12345?",
    "ＡＢＣ，ｏｋ！全角标点：（测试）", "Café naïve résumé", "🙂👍 thanks!!", "转人工 talk to a human please",
    "don't can't it's", "e-mail: li.ming@example.com, ¥59.90", "\t\n多个\u3000空白\r\n", "ＡＢＣ１２３",
    "x" * 150, "退" * 120, "unknownwordzzqx", "İstanbul ß ﬁ", "a\u0000b\u200bc",
]


def write_golden(tok, path, max_len, extra):
    with open(path, "w", encoding="utf-8") as f:
        for t in GOLDEN + extra:
            f.write(json.dumps({"text": t, "tokens": tok.tokenize(t), "ids": tok.encode(t, max_len)},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
