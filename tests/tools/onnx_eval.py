#!/usr/bin/python3
"""Runs an ONNX model of `akt export --format onnx` with a small NumPy
interpreter of the ops it uses (Debian has no onnxruntime), for the export
test: the graph's semantics, not just its well-formedness (onnx.checker).

    onnx_eval.py MODEL.onnx DATA.bin N OUT.npy

Reads the first N CIFAR-10 records, feeds pixel / 255 as 'image' and saves
the 'logits'. Ops: Sub Div Mul Add Relu Conv BatchNormalization
QuantizeLinear DequantizeLinear Clip Round Slice Pad GlobalAveragePool
Flatten Gemm, with ONNX's semantics (round half to even, int8 saturation,
per-axis dequantization). float32 throughout, as a runtime would.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def conv(x, w, strides, pads):
    n, c, h, wd = x.shape
    co, ci, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    cols = np.empty((n, ci, kh, kw, ho, wo), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i:i + strides[0] * ho:strides[0],
                                  j:j + strides[1] * wo:strides[1]]
    y = np.tensordot(cols, w, axes=([1, 2, 3], [1, 2, 3]))  # n, ho, wo, co
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).astype(np.float32)


def attrs_of(node):
    out = {}
    for a in node.attribute:
        out[a.name] = onnx.helper.get_attribute_value(a)
    return out


def run(model, image):
    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env["image"] = image
    for node in model.graph.node:
        a = attrs_of(node)
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Sub":
            y = (x[0] - x[1]).astype(np.float32)
        elif op == "Div":
            y = (x[0] / x[1]).astype(np.float32)
        elif op == "Mul":
            y = (x[0] * x[1]).astype(np.float32)
        elif op == "Add":
            y = (x[0] + x[1]).astype(np.float32)
        elif op == "Relu":
            y = np.maximum(x[0], 0).astype(np.float32)
        elif op == "Round":
            y = np.round(x[0]).astype(np.float32)  # half to even
        elif op == "Conv":
            y = conv(x[0], x[1], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]))
        elif op == "BatchNormalization":
            g, b, m, v = (t.reshape(1, -1, 1, 1) for t in x[1:5])
            eps = np.float32(a.get("epsilon", 1e-5))
            y = ((x[0] - m) / np.sqrt(v + eps) * g + b).astype(np.float32)
        elif op == "QuantizeLinear":
            zp = x[2] if len(x) > 2 and x[2] is not None else np.int8(0)
            info = np.iinfo(zp.dtype)
            q = np.round(x[0] / x[1]) + zp.astype(np.float32)
            y = np.clip(q, info.min, info.max).astype(zp.dtype)
        elif op == "DequantizeLinear":
            scale = x[1]
            zp = x[2] if len(x) > 2 and x[2] is not None else np.zeros_like(scale, dtype=x[0].dtype)
            if scale.ndim == 1:  # per axis
                shape = [1] * x[0].ndim
                shape[a.get("axis", 1)] = -1
                scale, zp = scale.reshape(shape), zp.reshape(shape)
            y = ((x[0].astype(np.int32) - zp.astype(np.int32)).astype(np.float32) * scale).astype(np.float32)
        elif op == "Clip":
            y = np.clip(x[0], x[1], x[2]).astype(x[0].dtype)
        elif op == "Slice":
            starts, ends, axes, steps = x[1], x[2], x[3], x[4]
            sl = [slice(None)] * x[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                sl[ax] = slice(int(s), min(int(e), x[0].shape[ax]), int(st))
            y = x[0][tuple(sl)]
        elif op == "Pad":
            p = x[1]
            r = len(p) // 2
            y = np.pad(x[0], [(int(p[i]), int(p[i + r])) for i in range(r)]).astype(np.float32)
        elif op == "GlobalAveragePool":
            y = x[0].mean(axis=(2, 3), keepdims=True, dtype=np.float32)
        elif op == "Flatten":
            y = x[0].reshape(x[0].shape[0], -1)
        elif op == "Gemm":
            w = x[1].T if a.get("transB", 0) else x[1]
            y = (x[0] @ w + x[2]).astype(np.float32)
        else:
            sys.exit(f"onnx_eval: op {op} is not implemented")
        env[node.output[0]] = y
    return env["logits"]


def main():
    model_path, data, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model = onnx.load(model_path)
    raw = np.fromfile(data, dtype=np.uint8).reshape(-1, 3073)[:n]
    image = (raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0))
    logits = np.concatenate([run(model, image[i:i + 25]) for i in range(0, len(image), 25)])
    np.save(out, logits)
    print(f"onnx_eval: {len(image)} images, logits {logits.shape}")


if __name__ == "__main__":
    main()
