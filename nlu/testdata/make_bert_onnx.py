#!/usr/bin/python3
"""Write a tiny, randomly initialised BERT-like ONNX model, as a Hugging Face export would lay
it out, for nlu's tests (hf_test.go runs this script; it needs only the onnx and numpy
packages, python3-onnx and python3-numpy on Debian).

The graph is BERT's shape without attention:

    word_embeddings[input_ids] + position_embeddings[0..seq) + token_type_embeddings[token_type_ids]
    -> LayerNormalization -> tanh(x W + b)               = last_hidden_state [batch, seq, hidden]
    tanh(last_hidden_state[:, 0] Wp + bp)                 = pooler_output     [batch, hidden]
    masked mean of last_hidden_state, then (m Wc + bc)    = logits            [batch, labels]

With --reference '[[2, 7, 3], ...]' it also prints, as JSON, what the model computes for each id
sequence (no padding, attention mask all ones): logits, the L2-normalised masked mean of
last_hidden_state ("mean"), the L2-normalised pooler_output ("pooler") and the L2-normalised
last_hidden_state of the first token ("cls").
"""

import argparse
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPS = 1e-12


def weights(vocab, hidden, max_pos, labels, seed):
    rng = np.random.default_rng(seed)

    def normal(scale, *shape):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "word_embeddings": normal(0.5, vocab, hidden),
        "position_embeddings": normal(0.1, max_pos, hidden),
        "token_type_embeddings": normal(0.1, 2, hidden),
        "ln_gamma": (1 + normal(0.1, hidden)).astype(np.float32),
        "ln_beta": normal(0.1, hidden),
        "dense_w": normal(1 / np.sqrt(hidden), hidden, hidden),
        "dense_b": normal(0.1, hidden),
        "pooler_w": normal(1 / np.sqrt(hidden), hidden, hidden),
        "pooler_b": normal(0.1, hidden),
        "classifier_w": normal(2.0, hidden, max(labels, 1)),
        "classifier_b": normal(0.1, max(labels, 1)),
    }


def build(w, args, outputs):
    hidden = args.hidden
    ids = args.ids_name
    nodes = []
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]

    def const(name, value):
        inits.append(numpy_helper.from_array(np.array(value, dtype=np.int64 if isinstance(value, (int, list)) else np.float32), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    x = node("Gather", ["word_embeddings", ids], "words")
    shape = node("Shape", [ids], "ids_shape")
    seq = node("Gather", [shape, const("one", 1)], "seq_len", axis=0)
    positions = node("Range", [const("zero", 0), seq, "one"], "positions")
    pos = node("Gather", ["position_embeddings", positions], "pos")
    x = node("Add", [x, pos], "with_pos")
    if not args.no_token_type_ids:
        tt = node("Gather", ["token_type_embeddings", "token_type_ids"], "types")
        x = node("Add", [x, tt], "with_types")
    x = node("LayerNormalization", [x, "ln_gamma", "ln_beta"], "normed", axis=-1, epsilon=EPS)
    x = node("MatMul", [x, "dense_w"], "dense")
    x = node("Add", [x, "dense_b"], "dense_biased")
    node("Tanh", [x], "last_hidden_state")

    first = node("Gather", ["last_hidden_state", "zero"], "first", axis=1)
    p = node("MatMul", [first, "pooler_w"], "pooler_dense")
    p = node("Add", [p, "pooler_b"], "pooler_biased")
    node("Tanh", [p], "pooler_output")

    mask = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask3 = node("Unsqueeze", [mask, const("last_axis", [2])], "mask3")
    masked = node("Mul", ["last_hidden_state", mask3], "masked")
    total = node("ReduceSum", [masked, const("seq_axis", [1])], "total", keepdims=0)
    count = node("ReduceSum", [mask, "seq_axis"], "count", keepdims=1)
    count = node("Max", [count, const("tiny", 1e-9)], "count_safe")
    mean = node("Div", [total, count], "mean")
    l = node("MatMul", [mean, "classifier_w"], "classifier")
    node("Add", [l, "classifier_b"], "logits")

    def tensor(name, elem, *dims):
        return helper.make_tensor_value_info(name, elem, list(dims))

    inputs = [tensor(ids, TensorProto.INT64, "batch_size", "sequence_length"),
              tensor("attention_mask", TensorProto.INT64, "batch_size", "sequence_length")]
    if not args.no_token_type_ids:
        inputs.append(tensor("token_type_ids", TensorProto.INT64, "batch_size", "sequence_length"))
    shapes = {
        "logits": ("batch_size", args.labels),
        "last_hidden_state": ("batch_size", "sequence_length", hidden),
        "pooler_output": ("batch_size", hidden),
    }
    outs = [tensor(name, TensorProto.FLOAT, *shapes[name]) for name in outputs]
    graph = helper.make_graph(nodes, "tiny_bert", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kefu nlu tests")
    model.ir_version = 8  # what onnx 1.12 (Debian 12) writes; ONNX Runtime 1.24 reads it
    onnx.checker.check_model(model)
    return model


def reference(w, args, seq):
    ids = np.array(seq, dtype=np.int64)
    x = w["word_embeddings"][ids] + w["position_embeddings"][np.arange(len(ids))]
    if not args.no_token_type_ids:
        x = x + w["token_type_embeddings"][np.zeros_like(ids)]
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    x = (x - mu) / np.sqrt(var + EPS) * w["ln_gamma"] + w["ln_beta"]
    h = np.tanh(x @ w["dense_w"] + w["dense_b"])
    mean = h.mean(0)
    pooler = np.tanh(h[0] @ w["pooler_w"] + w["pooler_b"])
    logits = mean @ w["classifier_w"] + w["classifier_b"]

    def unit(v):
        return (v / np.linalg.norm(v)).tolist()

    out = {"mean": unit(mean), "pooler": unit(pooler), "cls": unit(h[0])}
    if args.labels > 0:
        out["logits"] = logits.tolist()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="where to write the model, e.g. DIR/model.onnx")
    p.add_argument("--vocab", type=int, required=True, help="rows of the word embedding table")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--max-pos", type=int, default=64, help="rows of the position embedding table")
    p.add_argument("--labels", type=int, default=0, help="width of logits; 0: no classification head")
    p.add_argument("--outputs", default="logits,last_hidden_state,pooler_output")
    p.add_argument("--ids-name", default="input_ids", help="name of the token id input")
    p.add_argument("--no-token-type-ids", action="store_true", help="no token_type_ids input, as in DistilBERT")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reference", help="JSON list of id sequences to print the expected outputs of")
    args = p.parse_args()

    outputs = [o for o in args.outputs.split(",") if o]
    if "logits" in outputs and args.labels <= 0:
        p.error("logits need --labels")
    w = weights(args.vocab, args.hidden, args.max_pos, args.labels, args.seed)
    onnx.save(build(w, args, outputs), args.out)
    if args.reference:
        json.dump([reference(w, args, s) for s in json.loads(args.reference)], sys.stdout)


if __name__ == "__main__":
    main()
