#!/usr/bin/python3
"""The fake-quantized student of an akt run, rebuilt in PyTorch.

    akt export RESULTS.h5 --run ID --format torch --out student.h5
    /usr/bin/python3 tools/akt_student.py student.h5 --data test_batch_lossless1000.bin
        [--batch 200] [--limit N] [--save-pt student.pt] [--logits OUT.npy]

Run with Debian's interpreter (it has torch, h5py and numpy). Builds the CIFAR
ResNet of the export (any depth 6n+2, pad or conv1x1 shortcuts), loads its
state_dict (the conv/FC weights are already the fake-quantized values
(q + zp) / scale the student computes with; BN in inference mode), puts an
activation fake quantizer after every ReLU with the exported per-quantizer
scale s and zero point zp (SPEC 2):

    out = (clamp(round(s * x - zp), -2^(k-1), 2^(k-1) - 1) + zp) / s

evaluates it on a CIFAR-10/100 binary file normalised as akt does
(((u8 / 255) - mean) / std, float32) and prints

    top1=XX.XX top5=XX.XX n=N

(top-1/top-5 ranks as akt's: classes scoring strictly higher, ties towards
the lower index). Every quantizer step is one float32 operation in akt's
order, so the only differences from akt are the convolutions' summation
order. --save-pt writes the state_dict plus the quantizer tensors as a
torch.save file; --logits saves the logits.
"""
import argparse
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class ActQuant(nn.Module):
    """k-bit activation fake quantizer with a fixed (exported) scale and zero point."""

    def __init__(self, scale, zero_point, bits):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("zero_point", torch.tensor(zero_point, dtype=torch.float32))
        self.qmin, self.qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def forward(self, x):
        q = torch.clamp(torch.round(self.scale * x - self.zero_point), self.qmin, self.qmax)
        return (q + self.zero_point) / self.scale  # a true division, as akt's quantizer


class PadShortcut(nn.Module):
    """Option A: x[:, :, ::2, ::2], planes // 4 zero channels before and after."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class Block(nn.Module):
    def __init__(self, cin, planes, stride, shortcut, q1, q2):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or cin != planes:
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes))
                             if shortcut == "conv1x1" else PadShortcut(planes // 4))
        else:
            self.shortcut = nn.Identity()
        self.q1, self.q2 = q1, q2

    def forward(self, x):
        f = self.bn2(self.conv2(self.q1(F.relu(self.bn1(self.conv1(x))))))
        return self.q2(F.relu(f + self.shortcut(x)))


class Student(nn.Module):
    def __init__(self, depth, num_classes, shortcut, act):
        super().__init__()
        n = (depth - 2) // 6
        quant = iter(act)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.q0 = next(quant)
        cin = 16
        for s, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(Block(cin, planes, stride, shortcut, next(quant), next(quant)))
                cin = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.q0(F.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def load_student(path):
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        if "format_version" not in a:
            sys.exit(f"akt_student: error: {path}: not an 'akt export --format torch' file")
        depth, classes = int(a["depth"]), int(a["num_classes"])
        shortcut = a["shortcut"].decode() if isinstance(a["shortcut"], bytes) else str(a["shortcut"])
        aq = f["act_quant"]
        act = [ActQuant(float(s), float(z), int(b))
               for s, z, b in zip(aq["scale"][:], aq["zero_point"][:], aq["bits"][:])]
        model = Student(depth, classes, shortcut, act)
        sd = {}
        for key in model.state_dict():
            if key.endswith("num_batches_tracked") or ".q" in key or key.startswith("q0."):
                continue
            if key not in f:
                sys.exit(f"akt_student: error: {path}: no dataset {key}")
            sd[key] = torch.from_numpy(np.asarray(f[key], dtype=np.float32))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (k.endswith("num_batches_tracked") or
                                              k.endswith(".scale") or k.endswith(".zero_point"))]
        if missing or unexpected:
            sys.exit(f"akt_student: error: {path}: keys differ: missing {missing}, "
                     f"unexpected {unexpected}")
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = float(a["bn_eps"])
        mean = np.asarray(f["input_mean"], dtype=np.float32)
        std = np.asarray(f["input_std"], dtype=np.float32)
    model.eval()
    return model, mean, std, a


def read_cifar(path, classes, limit):
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 3073 if classes <= 10 else 3074
    if raw.size == 0 or raw.size % rec:
        sys.exit(f"akt_student: error: {path}: {raw.size} bytes is not a whole number of "
                 f"{rec}-byte records")
    raw = raw.reshape(-1, rec)
    if limit:
        raw = raw[:limit]
    labels = raw[:, rec - 3073].astype(np.int64)
    return raw[:, rec - 3072:].reshape(-1, 3, 32, 32), labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("student", help="file of 'akt export --format torch'")
    ap.add_argument("--data", required=True, help="CIFAR binary file")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--limit", type=int, default=0, help="first N records only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-pt", help="torch.save the state_dict and quantizers here")
    ap.add_argument("--logits", help="np.save the logits here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, mean, std, attrs = load_student(args.student)
    pixels, labels = read_cifar(args.data, int(attrs["num_classes"]), args.limit)
    # akt's normalisation: ((u8 / 255) - mean) / std in float32
    lut = ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)) - mean[:, None]) / std[:, None]
    top1 = top5 = 0
    out = []
    with torch.no_grad():
        for s in range(0, len(labels), args.batch):
            p = pixels[s:s + args.batch]
            x = np.stack([lut[c][p[:, c]] for c in range(3)], axis=1).astype(np.float32)
            z = model(torch.from_numpy(x)).numpy()
            out.append(z)
            y = labels[s:s + args.batch]
            zl = z[np.arange(len(y)), y][:, None]
            idx = np.arange(z.shape[1])[None, :]
            above = ((z > zl) | ((z == zl) & (idx < y[:, None]))).sum(axis=1)
            top1 += int((above == 0).sum())
            top5 += int((above < 5).sum())
    n = len(labels)
    print(f"top1={100.0 * top1 / n:.2f} top5={100.0 * top5 / n:.2f} n={n}")
    if args.logits:
        np.save(args.logits, np.concatenate(out))
    if args.save_pt:
        torch.save({"state_dict": model.state_dict(), "attrs": {k: (v.decode() if isinstance(v, bytes) else v)
                                                                for k, v in attrs.items()}},
                   args.save_pt)


if __name__ == "__main__":
    main()
