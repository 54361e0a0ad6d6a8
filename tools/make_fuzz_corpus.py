#!/usr/bin/python3
"""Seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/), small
inputs that reach deep into each reader. Run with Debian's interpreter (h5py):

    /usr/bin/python3 tools/make_fuzz_corpus.py [--out tests/fuzz/corpus]

teacher/  tiny HDF5 teacher files: every root attribute akt reads (arch,
          shortcut, num_classes, input_mean, input_std, bn_eps) valid, as an
          array, of the wrong type or an over-long string, plus a few datasets
cifar/    first byte = format selector (0 auto, 1 cifar10, 2 cifar100, 3
          coarse), then records: valid, truncated, labels out of range
yaml/     the shipped experiments and edge cases of the schema
The inputs are deterministic (no randomness), so rerunning rewrites the same
files.
"""
import argparse
import glob
import os
import shutil

import h5py
import numpy as np


def teacher(path, **attrs):
    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f.create_dataset("conv1.weight", data=np.zeros((16, 3, 3, 3), np.float32))
        f.create_dataset("bn1.weight", data=np.ones(16, np.float32))
        f.create_dataset("linear.bias", data=np.zeros(10, np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fuzz", "corpus"))
    out = ap.parse_args().out
    good = dict(arch="resnet8", shortcut="pad", num_classes=np.int64(10),
                input_mean=np.array([0.485, 0.456, 0.406], np.float32),
                input_std=np.array([0.229, 0.224, 0.225], np.float32), bn_eps=1e-5)
    t = os.path.join(out, "teacher")
    os.makedirs(t, exist_ok=True)
    teacher(os.path.join(t, "valid_attrs.h5"), **good)
    teacher(os.path.join(t, "no_attrs.h5"))
    teacher(os.path.join(t, "arrays.h5"), **dict(good, num_classes=np.array([10, 10]),
                                                 arch=np.array([b"resnet8", b"resnet8"]),
                                                 shortcut=np.array([b"pad", b"pad"])))
    teacher(os.path.join(t, "types.h5"), **dict(good, num_classes="ten", arch=np.int64(20),
                                                shortcut=1.5, bn_eps="tiny",
                                                input_mean=np.array([1, 2], np.int32)))
    teacher(os.path.join(t, "long_string.h5"), **dict(good, arch="resnet" + "8" * 300))
    c = os.path.join(out, "cifar")
    os.makedirs(c, exist_ok=True)
    rec10 = bytes([3]) + bytes(range(256)) * 12
    rec100 = bytes([7, 42]) + bytes(range(256)) * 12
    for name, data in {"c10_two": b"\x01" + rec10 * 2, "auto_one": b"\x00" + rec10,
                       "c100_one": b"\x02" + rec100, "coarse_one": b"\x03" + rec100,
                       "truncated": b"\x01" + rec10[:1000], "bad_label": b"\x01" + b"\xff" + rec10[1:],
                       "empty": b"\x01"}.items():
        with open(os.path.join(c, name + ".bin"), "wb") as f:
            f.write(data)
    y = os.path.join(out, "yaml")
    os.makedirs(y, exist_ok=True)
    for p in glob.glob(os.path.join(here, "..", "experiments", "*.yaml")):
        shutil.copy(p, os.path.join(y, os.path.basename(p)))
    edge = {
        "flow.yaml": "name: f\nteacher: teachers/resnet20_cifar10_akamaster_optA.h5\n"
                     "data: cifar-10-batches-bin/test_batch.bin\n"
                     "defaults: {epochs: 1, iters: 1, batch: 2, milestones: [1, 2]}\n"
                     "matrix: {generator: [gdfq, qimera], loss: [logit, akt], bits: [3, 4]}\n"
                     "exclude: [{generator: qimera, bits: 3}]\n"
                     "include: [{id: x, generator: adadfq, loss: akt, loss.maps: last_stage}]\n",
        "anchors.yaml": "name: a\ndefaults: &d {epochs: 2}\nmatrix:\n  seed: [0, 1]\n"
                        "  loss: [*d]\n",
        "deep.yaml": "name: d\nmatrix:\n  seed: " + "[" * 50 + "]" * 50 + "\n",
        "tags.yaml": "%YAML 1.1\n---\nname: !!str t\nmatrix: {seed: !!seq [1]}\n...\n",
    }
    for name, text in edge.items():
        with open(os.path.join(y, name), "w") as f:
            f.write(text)
    print("wrote", out)


if __name__ == "__main__":
    main()
