#!/usr/bin/python3
"""Golden fixtures for tests/golden_resnet.c: an independent PyTorch reference.

Run with Debian's interpreter (it has torch and h5py):

    /usr/bin/python3 tools/make_fixtures.py --data ../shared/data --out tests/fixtures

It defines the CIFAR ResNet-20 with the option-A ("pad") shortcut, loads the
teacher from its HDF5 state_dict file, takes the first 4 records of the
lossless CIFAR-10 test file and writes tests/fixtures/resnet20_golden.h5:

  input                [4,3,32,32] f32  ((u8.float()/255.0) - mean)/std, float32
  labels               [4]         i32
  logits               [4,10]      f32  eval mode (BN running stats)
  logits_f64           [4,10]      f64  same model and input in float64
  features/F1..F9      [1,C,H,W]   f32  body outputs bn2(conv2(relu(bn1(conv1 x))))
                                        before the residual add, eval mode,
                                        image 0 only, full maps (a channel mean
                                        alone would hide a spatial/stride/padding
                                        bug)
  features_chmean/F1..F9 [4,C]     f64  the same maps' means over H,W for all 4
                                        images (catches batch-indexing bugs
                                        cheaply; computed in f64 from the f32 maps)
  --- training step, BN in eval mode (the zero-shot student's mode) ---
  loss_ce              [1]         f32  mean CE of the 4 images vs. labels
  loss_ce_f64          [1]         f64
  grad/<key>           like <key>  f32  d loss / d param, every conv/BN weight
                                        and bias and the linear weight/bias
  grad_input           [4,3,32,32] f32  d loss / d input
  --- training step, BN in batch-statistics (train) mode ---
  train_bn/logits      [4,10]      f32
  train_bn/loss_ce     [1]         f32
  train_bn/grad/<key>  like <key>  f32  every trainable parameter with at most
                                        9216 elements (all BN, linear, stem,
                                        layer1, layer2 convs), full
  train_bn/grad_sample/<key> [n/7] f32  the 6 larger (layer3 conv) gradients:
                                        flat elements 0, 7, 14, ... (size cap)
  train_bn/grad_l2/<key> [1]       f64  and their full L2 norm (f64 sum of the
                                        squared f32 values)
  train_bn/grad_input  [4,3,32,32] f32
  train_bn/running_mean/<bn>, train_bn/running_var/<bn>
                       [C]         f32  after the one update (momentum 0.1,
                                        unbiased variance), <bn> = e.g. layer2.0.bn1

Everything is computed in float32 as a normal PyTorch user would (CPU, default
thread count); the *_f64 sets come from a double copy of the model and input.
Datasets are gzip+shuffle compressed (lossless). Root attributes record how the
file was made (torch version, command, sha256 of every input and of this
script).
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TEACHER = "teachers/resnet20_cifar10_akamaster_optA.h5"
TESTSET = "cifar-10-batches-bin/test_batch_lossless1000.bin"
N_IMAGES = 4
N_FEATURE_IMAGES = 1
TRAIN_BN_FULL_MAX = 9216  # larger train_bn gradients are sampled (fixture < 2 MB)
TRAIN_BN_SAMPLE_STRIDE = 7


class PadShortcut(nn.Module):
    """Option A: x[:, :, ::2, ::2], planes//4 zero channels before and after."""

    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut(planes)
        else:
            self.shortcut = nn.Identity()
        self.body_out = None

    def forward(self, x):
        f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        self.body_out = f
        return F.relu(f + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        self.layer1 = self._stage(16, 16, 1)
        self.layer2 = self._stage(16, 32, 2)
        self.layer3 = self._stage(32, 64, 2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_planes, planes, stride):
        return nn.Sequential(BasicBlock(in_planes, planes, stride),
                             BasicBlock(planes, planes, 1),
                             BasicBlock(planes, planes, 1))

    def blocks(self):
        return [b for s in (self.layer1, self.layer2, self.layer3) for b in s]

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_teacher(path):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        sd = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float32)) for k in f.keys()}
    if str(attrs.get("shortcut")) != "pad":
        sys.exit(f"{path}: shortcut {attrs.get('shortcut')!r}, this script builds option A only")
    if abs(float(attrs.get("bn_eps", 1e-5)) - 1e-5) > 1e-12:
        sys.exit(f"{path}: bn_eps {attrs.get('bn_eps')} != 1e-5")
    model = ResNet20(int(attrs["num_classes"]))
    want = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    if want != set(sd):
        sys.exit(f"{path}: keys differ: missing {sorted(want - set(sd))}, extra {sorted(set(sd) - want)}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    mean = np.asarray(attrs["input_mean"], dtype=np.float32)
    std = np.asarray(attrs["input_std"], dtype=np.float32)
    return model, mean, std


def read_records(path, n):
    raw = np.fromfile(path, dtype=np.uint8, count=n * 3073).reshape(n, 3073)
    labels = raw[:, 0].astype(np.int64)
    pixels = raw[:, 1:].reshape(n, 3, 32, 32).copy()
    return labels, pixels


def train_step(model, x, labels):
    """One forward/backward of mean CE; returns logits, loss, grads, grad_input."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads, x.grad.detach().clone()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder (holds teachers/ and cifar-10-batches-bin/)")
    ap.add_argument("--out", required=True, help="output folder (tests/fixtures)")
    args = ap.parse_args()

    torch.manual_seed(0)
    teacher_path = os.path.join(args.data, TEACHER)
    test_path = os.path.join(args.data, TESTSET)
    model, mean_np, std_np = load_teacher(teacher_path)
    labels_np, pixels_np = read_records(test_path, N_IMAGES)

    # Normalisation exactly as a PyTorch user writes it, in float32.
    u8 = torch.from_numpy(pixels_np)
    mean = torch.from_numpy(mean_np).view(1, 3, 1, 1)
    std = torch.from_numpy(std_np).view(1, 3, 1, 1)
    x = ((u8.float() / 255.0) - mean) / std
    assert x.dtype == torch.float32
    labels = torch.from_numpy(labels_np)

    # Eval mode forward (float32 and float64).
    model.eval()
    with torch.no_grad():
        logits = model(x)
        feats = [b.body_out.clone() for b in model.blocks()]
        model64 = ResNet20(model.linear.out_features)
        model64.load_state_dict(model.state_dict())
        model64 = model64.double().eval()
        logits64 = model64(x.double())

    # Training step in the zero-shot mode: BN eval (running stats), all params trainable.
    _, loss, grads, grad_input = train_step(model, x, labels)
    _, loss64, _, _ = train_step(model64, x.double(), labels)

    # Training step with BN on batch statistics (updates running stats).
    model_tb = ResNet20(model.linear.out_features)
    model_tb.load_state_dict(model.state_dict())
    model_tb.train()
    logits_tb, loss_tb, grads_tb, grad_input_tb = train_step(model_tb, x, labels)
    bn_names = [n for n, m in model_tb.named_modules() if isinstance(m, nn.BatchNorm2d)]

    os.makedirs(args.out, exist_ok=True)
    out_path = os.path.join(args.out, "resnet20_golden.h5")
    comp = dict(compression="gzip", compression_opts=9, shuffle=True)

    def put(f, name, arr, dtype=np.float32):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size >= 256:
            f.create_dataset(name, data=arr, **comp)
        else:
            f.create_dataset(name, data=arr)

    script = os.path.abspath(__file__)
    with h5py.File(out_path, "w", libver=("v110", "v110")) as f:
        put(f, "input", x.numpy())
        put(f, "labels", labels_np, np.int32)
        put(f, "logits", logits.numpy())
        put(f, "logits_f64", logits64.numpy(), np.float64)
        for i, a in enumerate(feats):
            put(f, f"features/F{i + 1}", a[:N_FEATURE_IMAGES].numpy())
            put(f, f"features_chmean/F{i + 1}", a.double().mean(dim=(2, 3)).numpy(), np.float64)
        put(f, "loss_ce", loss.numpy())
        put(f, "loss_ce_f64", loss64.numpy(), np.float64)
        for k, g in grads.items():
            put(f, f"grad/{k}", g.numpy())
        put(f, "grad_input", grad_input.numpy())
        put(f, "train_bn/logits", logits_tb.numpy())
        put(f, "train_bn/loss_ce", loss_tb.numpy())
        for k, g in grads_tb.items():
            if g.numel() <= TRAIN_BN_FULL_MAX:
                put(f, f"train_bn/grad/{k}", g.numpy())
            else:
                put(f, f"train_bn/grad_sample/{k}", g.flatten()[::TRAIN_BN_SAMPLE_STRIDE].numpy())
                put(f, f"train_bn/grad_l2/{k}", g.double().pow(2).sum().sqrt().numpy(), np.float64)
        put(f, "train_bn/grad_input", grad_input_tb.numpy())
        for n in bn_names:
            m = model_tb.get_submodule(n)
            put(f, f"train_bn/running_mean/{n}", m.running_mean.numpy())
            put(f, f"train_bn/running_var/{n}", m.running_var.numpy())

        f.attrs["description"] = (
            "ResNet-20 (option-A pad shortcut) golden values from an independent PyTorch "
            "reference, for tests/golden_resnet.c; see tools/make_fixtures.py for the layout")
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["numpy_version"] = np.__version__
        f.attrs["h5py_version"] = h5py.__version__
        f.attrs["python"] = sys.version.split()[0]
        f.attrs["torch_num_threads"] = torch.get_num_threads()
        f.attrs["command"] = "/usr/bin/python3 tools/make_fixtures.py " + " ".join(sys.argv[1:])
        f.attrs["teacher_file"] = TEACHER
        f.attrs["teacher_sha256"] = sha256(teacher_path)
        f.attrs["data_file"] = TESTSET
        f.attrs["data_sha256"] = sha256(test_path)
        f.attrs["data_records"] = f"0..{N_IMAGES - 1}"
        f.attrs["script_sha256"] = sha256(script)
        f.attrs["normalisation"] = "((u8.float()/255.0) - mean)/std in float32, mean/std = teacher input_mean/input_std"
        f.attrs["input_mean"] = mean_np
        f.attrs["input_std"] = std_np
        f.attrs["features_images"] = N_FEATURE_IMAGES
        f.attrs["train_bn_grad_full_max"] = TRAIN_BN_FULL_MAX
        f.attrs["train_bn_grad_sample_stride"] = TRAIN_BN_SAMPLE_STRIDE
        f.attrs["eval_step"] = ("model.eval(); loss = F.cross_entropy(model(x), labels) (mean); "
                                "grads of every parameter and of x")
        f.attrs["train_bn_step"] = ("fresh copy of the teacher, model.train(); same loss; BN on batch "
                                    "statistics (biased var in the forward), running stats updated once "
                                    "with momentum 0.1 and unbiased var")

    print(f"wrote {out_path}: {os.path.getsize(out_path)} bytes")
    print(f"  labels {labels_np.tolist()}  loss {loss.item():.7f} (f64 {loss64.item():.9f})  "
          f"train_bn loss {loss_tb.item():.7f}")
    print(f"  max |logits f32 - f64| {(logits.double() - logits64).abs().max().item():.3g}")
    print(f"  argmax {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main()
