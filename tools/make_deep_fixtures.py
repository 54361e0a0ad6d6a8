#!/usr/bin/python3
"""Golden fixtures for the depth-generic CIFAR ResNet (depth 6n+2): an independent PyTorch reference.

Run with Debian's interpreter (it has torch and h5py):

    /usr/bin/python3 tools/make_deep_fixtures.py --data ../shared/data --out tests/fixtures

It defines a CIFAR ResNet for any n (n basic blocks per stage, widths 16/32/64,
stride 2 at the first block of stages 2 and 3) with either shortcut style:
`pad` (option A: x[:, :, ::2, ::2] plus planes/4 zero channels before and
after) or `conv1x1` (option B: conv1x1(stride s, no bias) + BN, state_dict keys
layerS.B.shortcut.0.weight [Cout,Cin,1,1] and layerS.B.shortcut.1.{weight,
bias,running_mean,running_var}, only in the blocks that change shape).

Before writing anything it checks the model on the four shared teachers
(resnet20/32/44/56, option A): top-1 on the 1000 lossless test images must be
91.50 / 92.80 / 93.30 / 92.60 (shared/data/README.md), else it exits non-zero.

B = blocks per stage, F_i = the body output bn2(conv2(relu(bn1(conv1 x)))) of
block i (1-based, stage-major), before the residual add, in eval mode.

tests/fixtures/resnet56_golden.h5 -- the real teacher
teachers/resnet56_cifar10_akamaster_optA.h5 on records 0..3 of
cifar-10-batches-bin/test_batch_lossless1000.bin:

  input                 [4,3,32,32] f32  ((u8.float()/255.0) - mean)/std, float32,
                                         mean/std = the teacher's input_mean/input_std
  labels                [4]         i32
  logits                [4,10]      f32  eval mode (BN running stats)
  logits_f64            [4,10]      f64  same weights and input in float64
  features/F1,F14,F27   [1,C,H,W]   f32  full maps of image 0 (first, middle, last)
  features_chmean/F1..F27 [4,C]     f64  channel means over H,W of every body
                                         output, all 4 images (f64 mean of the f32 map)
  --- one training step, BN in eval mode (the zero-shot mode) ---
  loss_ce               [1]         f32  mean CE of the 4 images vs. labels
  loss_ce_f64           [1]         f64
  grad/<key>            like <key>  f32  d loss / d param, trainable parameters with
                                         at most 4608 elements (stem, layer1 convs,
                                         layer2.0.conv1, all BN, linear), full
  grad_sample/<key>     [ceil(n/7)] f32  the larger gradients (other layer2 convs and
                                         all layer3 convs): flat elements 0, 7, 14, ...
  grad_l2/<key>         [1]         f64  and their full L2 norm (f64 sum of the squared
                                         f32 values)
  grad_input            [4,3,32,32] f32  d loss / d input
  root attributes: teacher_top1_lossless1000 (92.6, all 1000 images, f32 eval),
  grad_full_max (4608), grad_sample_stride (7), features_full ("F1,F14,F27"),
  depth, blocks_per_stage, shortcut, input_mean, input_std, provenance.

tests/fixtures/resnet_random_golden.h5 -- three networks whose weights come
from a formula (below) instead of a file, 10 classes, one group each:
resnet110_pad (n=18), resnet32_conv1x1 (n=5), resnet56_conv1x1 (n=9).

  formula_check/<key>     [16]  f32  the formula's first 16 values of a few keys
                                     (every role), for checking a C port first;
                                     attributes shape (the key's shape, i32[ndim]),
                                     role (conv, bn_weight, bn2_weight, bn_bias,
                                     running_mean, running_var) and fan_in
  formula_check_u64/<key> [16]  u64  splitmix64(fnv1a64(key) + j), j = 0..15, of the
                                     same keys (the integer stage alone)
  <net>/  attributes depth, blocks_per_stage, shortcut, num_classes, n_keys,
          n_trainable, n_values (all state_dict values, buffers included); datasets
          (per-key values are packed into arrays in key order: one HDF5 dataset per
          key costs ~350 bytes and there are 547 keys in a ResNet-110):
    keys                  [n_keys] S48  the state_dict keys in PyTorch order
                                     (num_batches_tracked dropped), NUL-padded
    key_shape             [n_keys,4] i32  each key's shape, unused trailing dims 0
    weight_sum            [n_keys,2] f64  per key: sum and sum of squares (f64, flat
                                     order) of its f32 formula values: checks a whole fill
    input                 [2,3,32,32] f32  the input (stored, not to be recomputed;
                                     already normalised, about unit variance)
    labels                [2]   i32  [3, 7]
    logits                [2,10] f32 eval mode
    logits_f64            [2,10] f64 a float64 copy of the same f32 weights and input
    features_chmean/F1..F{3B} [2,C] f64  channel means of every body output
    loss_ce, loss_ce_f64  [1]        mean CE vs. labels, BN eval
    --- one training step, BN in eval mode ---
    trainable             [T]   S48  the trainable parameters (named_parameters order)
    grad_stride           [T]   i32  1 (full: parameters of <= 1024 elements, i.e. BN,
                                     linear, stem conv, 16->32 shortcut conv) or S =
                                     root attribute grad_sample_stride (23)
    grad_offset           [T+1] i64  where parameter t's entries start in grad_values
    grad_values           [..]  f32  parameter t's flat gradient elements 0, s, 2s, ...
                                     (ceil(n/s) of them, s = grad_stride[t]) at
                                     grad_values[grad_offset[t] ..]
    grad_l2               [T]   f64  full L2 norm of each f32 gradient (f64 sum of squares)
    grad_l2_f64           [T]   f64  the same norm from the float64 model (how far f32
                                     rounding alone moves it: ~1e-6 relative)
    grad_input            [2,3,32,32] f32
    train_bn/logits       [2,10] f32  resnet110_pad only: a batch-statistics (train
    train_bn/loss_ce      [1]   f32   mode) forward of a fresh copy, same input

Weight formula (tests/deep_weights.h is the C port). For a state_dict key K
(its UTF-8 bytes, no terminator) and flat element j (row-major, 0-based):

  h  = FNV-1a-64(K): h = 0xcbf29ce484222325; per byte b: h ^= b; h *= 0x100000001b3
  s  = h + j                                   (uint64, wrap-around)
  z  = s + 0x9e3779b97f4a7c15                  (standard splitmix64 output for
  z  = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9     state s, all uint64 wrap-around)
  z  = (z ^ (z >> 27)) * 0x94d049bb133111eb
  x  = z ^ (z >> 31)
  u  = (double)(x >> 11) * 2^-53               (exact, in [0,1))
  value, computed in double and rounded once to float32 (round to nearest even):
    conv weight [Co,Ci,kh,kw]: (2u-1)*sqrt(3.0/fan_in), fan_in = Ci*kh*kw
    linear.weight [C,64], linear.bias [C]: (2u-1)*sqrt(3.0/64)
    BN weight of a body's second BN (layerS.B.bn2.weight): (0.5+u)*0.5
    every other BN weight (bn1, layerS.B.bn1, layerS.B.shortcut.1): 0.5+u
    BN bias:          0.2*(u-0.5)
    BN running_mean:  0.2*(u-0.5)
    BN running_var:   0.5+u
sqrt(3/fan_in) gives the conv weights variance 1/fan_in; the halved bn2 gamma
keeps the residual stream from growing block after block (eval BN with fixed
statistics does not renormalise): with it the 110-layer stream stays O(1-10)
and logits O(10), while features still vary with the input. All steps are
exact or one IEEE rounding, and none is a fused multiply-add candidate that
could change a result, so C reproduces the values bit for bit.

Everything is computed in float32 as a normal PyTorch user would (CPU, default
thread count); the *_f64 sets come from a double copy of the model and input.
Datasets are gzip+shuffle compressed (lossless). Root attributes record how each
file was made (torch version, command, sha256 of every input and of this script
and of tools/make_fixtures.py, whose helpers it imports).
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import PadShortcut, read_records, sha256, train_step  # noqa: E402

TESTSET = "cifar-10-batches-bin/test_batch_lossless1000.bin"
TEACHERS = {  # depth -> (file, top-1 % on the 1000 lossless test images per shared/data/README.md)
    20: ("teachers/resnet20_cifar10_akamaster_optA.h5", 91.50),
    32: ("teachers/resnet32_cifar10_akamaster_optA.h5", 92.80),
    44: ("teachers/resnet44_cifar10_akamaster_optA.h5", 93.30),
    56: ("teachers/resnet56_cifar10_akamaster_optA.h5", 92.60),
}
GOLDEN_DEPTH = 56
N_IMAGES = 4
FEATURES_FULL = (1, 14, 27)
GRAD_FULL_MAX = 4608  # resnet56_golden: larger gradients are sampled (file size)
GRAD_SAMPLE_STRIDE = 7
RANDOM_NETS = (("resnet110_pad", 110, "pad"), ("resnet32_conv1x1", 32, "conv1x1"),
               ("resnet56_conv1x1", 56, "conv1x1"))
RANDOM_LABELS = (3, 7)
RANDOM_GRAD_FULL_MAX = 1024
RANDOM_GRAD_SAMPLE_STRIDE = 23  # 7 would make the file ~2 MB; 23 is coprime with every dim
FORMULA_CHECK_KEYS = ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                      "layer1.0.bn2.weight", "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.weight",
                      "layer3.17.conv2.weight", "linear.weight", "linear.bias")
FORMULA_CHECK_N = 16

COMP = dict(compression="gzip", compression_opts=9, shuffle=True)


# ------------------------------------------------------------------ model ---

class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        if stride == 1 and in_planes == planes:
            self.shortcut = nn.Identity()
        elif shortcut == "pad":
            assert planes == 2 * in_planes and stride == 2
            self.shortcut = PadShortcut(planes)
        elif shortcut == "conv1x1":
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1))
        else:
            raise ValueError(f"shortcut {shortcut!r}: expected pad or conv1x1")
        self.body_out = None

    def forward(self, x):
        f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        self.body_out = f
        return F.relu(f + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth, shortcut, num_classes=10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth {depth}: expected 6n+2")
        n = (depth - 2) // 6
        self.depth, self.n, self.shortcut_style = depth, n, shortcut
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        self.layer1 = self._stage(16, 16, 1, n, shortcut)
        self.layer2 = self._stage(16, 32, 2, n, shortcut)
        self.layer3 = self._stage(32, 64, 2, n, shortcut)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_planes, planes, stride, n, shortcut):
        return nn.Sequential(*[BasicBlock(in_planes if b == 0 else planes, planes, stride if b == 0 else 1,
                                          shortcut) for b in range(n)])

    def blocks(self):
        return [b for s in (self.layer1, self.layer2, self.layer3) for b in s]

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def state_keys(model):
    return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]


def copy_model(model, dtype=torch.float32):
    m = CifarResNet(model.depth, model.shortcut_style, model.linear.out_features)
    m.load_state_dict(model.state_dict())
    return m.to(dtype)


def load_teacher(path):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        sd = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float32)) for k in f.keys()}
    arch = str(attrs.get("arch"))
    if not arch.startswith("resnet") or not arch[6:].isdigit():
        sys.exit(f"{path}: attribute arch {arch!r}, expected resnet<depth>")
    if str(attrs.get("shortcut")) != "pad":
        sys.exit(f"{path}: shortcut {attrs.get('shortcut')!r}, the shared teachers are option A (pad)")
    if abs(float(attrs.get("bn_eps", 1e-5)) - 1e-5) > 1e-12:
        sys.exit(f"{path}: bn_eps {attrs.get('bn_eps')} != 1e-5")
    model = CifarResNet(int(arch[6:]), "pad", int(attrs["num_classes"]))
    want = set(state_keys(model))
    if want != set(sd):
        sys.exit(f"{path}: keys differ: missing {sorted(want - set(sd))}, extra {sorted(set(sd) - want)}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    mean = np.asarray(attrs["input_mean"], dtype=np.float32)
    std = np.asarray(attrs["input_std"], dtype=np.float32)
    return model.eval(), mean, std


def normalise(pixels_u8, mean_np, std_np):
    """Exactly as make_fixtures.py (and a PyTorch user) writes it, in float32."""
    mean = torch.from_numpy(mean_np).view(1, 3, 1, 1)
    std = torch.from_numpy(std_np).view(1, 3, 1, 1)
    x = ((torch.from_numpy(pixels_u8).float() / 255.0) - mean) / std
    assert x.dtype == torch.float32
    return x


def top1(model, x, labels, batch=100):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            correct += (model(x[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    return 100.0 * correct / len(labels)


# ---------------------------------------------------------- weight formula ---

M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def splitmix64(s):
    """Standard splitmix64 output for state s (uint64 array), wrap-around arithmetic."""
    with np.errstate(over="ignore"):
        z = s + np.uint64(0x9e3779b97f4a7c15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        return z ^ (z >> np.uint64(31))


def formula_bits(key, n):
    with np.errstate(over="ignore"):
        return splitmix64(np.uint64(fnv1a64(key)) + np.arange(n, dtype=np.uint64))


def formula_u(key, n):
    return (formula_bits(key, n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def param_roles(model):
    """key -> (role, fan_in), from the module types (the C port goes by the key's name)."""
    roles = {}
    body_bn2 = {id(b.bn2) for b in model.blocks()}
    for mname, m in model.named_modules():
        p = mname + "." if mname else ""
        if isinstance(m, nn.Conv2d):
            roles[p + "weight"] = ("conv", m.in_channels * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            roles[p + "weight"] = ("conv", m.in_features)
            roles[p + "bias"] = ("conv", m.in_features)
        elif isinstance(m, nn.BatchNorm2d):
            roles[p + "weight"] = ("bn2_weight" if id(m) in body_bn2 else "bn_weight", 0)
            roles[p + "bias"] = ("bn_bias", 0)
            roles[p + "running_mean"] = ("running_mean", 0)
            roles[p + "running_var"] = ("running_var", 0)
    return roles


def formula_values(key, n, role, fan_in):
    u = formula_u(key, n)
    if role == "conv":
        v = (2.0 * u - 1.0) * np.sqrt(3.0 / fan_in)
    elif role in ("bn_weight", "running_var"):
        v = 0.5 + u
    elif role == "bn2_weight":
        v = (0.5 + u) * 0.5
    elif role in ("bn_bias", "running_mean"):
        v = 0.2 * (u - 0.5)
    else:
        raise ValueError(role)
    return v.astype(np.float32)


def formula_scalar(key, j, role, fan_in):
    """One value the slow way (Python ints and floats): cross-checks the vectorised numpy code."""
    s = (fnv1a64(key) + j) & M64
    z = (s + 0x9e3779b97f4a7c15) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    z ^= z >> 31
    u = (z >> 11) * 2.0 ** -53
    v = {"conv": lambda: (2.0 * u - 1.0) * math.sqrt(3.0 / fan_in), "bn2_weight": lambda: (0.5 + u) * 0.5,
         "bn_weight": lambda: 0.5 + u, "running_var": lambda: 0.5 + u,
         "bn_bias": lambda: 0.2 * (u - 0.5), "running_mean": lambda: 0.2 * (u - 0.5)}[role]()
    return z, np.float32(v)


def formula_model(depth, shortcut, num_classes=10):
    model = CifarResNet(depth, shortcut, num_classes)
    roles = param_roles(model)
    sd = model.state_dict()
    keys = state_keys(model)
    assert set(keys) == set(roles), sorted(set(keys) ^ set(roles))
    new = {k: torch.from_numpy(formula_values(k, sd[k].numel(), *roles[k])).view_as(sd[k]) for k in keys}
    missing, unexpected = model.load_state_dict(new, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return model.eval()


def random_input(batch):
    """A smooth 4x4 pattern (bilinear upsampled) plus fine noise, both from the formula, scaled to
    unit variance: iid noise alone makes the pooled features of two images nearly equal."""
    coarse = (2.0 * formula_u("input.coarse", batch * 3 * 16) - 1.0) * np.sqrt(3.0)
    fine = (2.0 * formula_u("input", batch * 3 * 32 * 32) - 1.0) * np.sqrt(3.0)
    x = F.interpolate(torch.from_numpy(coarse).view(batch, 3, 4, 4), size=(32, 32), mode="bilinear",
                      align_corners=False) + 0.5 * torch.from_numpy(fine).view(batch, 3, 32, 32)
    return (x / x.std()).float()


# ------------------------------------------------------------------ writing ---

KEY_DTYPE = "S48"  # fixed-length, NUL-padded: akt_param.name is char[48]


def names(keys):
    assert all(len(k.encode()) < 48 for k in keys)
    return np.array([k.encode() for k in keys], dtype=KEY_DTYPE)


def put(f, name, arr, dtype=np.float32):
    arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size >= 256:
        f.create_dataset(name, data=arr, **COMP)
    else:
        f.create_dataset(name, data=arr)


def l2(t):
    return t.double().pow(2).sum().sqrt().numpy()


def provenance(f, script, extra_cmd, test_path=None):
    here = os.path.dirname(script)
    f.attrs["torch_version"] = str(torch.__version__)
    f.attrs["numpy_version"] = np.__version__
    f.attrs["h5py_version"] = h5py.__version__
    f.attrs["python"] = sys.version.split()[0]
    f.attrs["torch_num_threads"] = torch.get_num_threads()
    f.attrs["command"] = "/usr/bin/python3 tools/make_deep_fixtures.py " + extra_cmd
    f.attrs["script_sha256"] = sha256(script)
    f.attrs["helpers_sha256"] = sha256(os.path.join(here, "make_fixtures.py"))
    f.attrs["helpers"] = "tools/make_fixtures.py (PadShortcut, read_records, sha256, train_step)"
    if test_path:
        f.attrs["data_file"] = TESTSET
        f.attrs["data_sha256"] = sha256(test_path)
    f.attrs["eval_step"] = ("model.eval(); loss = F.cross_entropy(model(x), labels) (mean); "
                            "grads of every parameter and of x")


def check_teachers(data):
    """Top-1 of every shared teacher on the lossless 1000; exits unless each matches the README."""
    labels_np, pixels = read_records(os.path.join(data, TESTSET), 1000)
    labels = torch.from_numpy(labels_np)
    got = {}
    for depth, (rel, want) in TEACHERS.items():
        model, mean, std = load_teacher(os.path.join(data, rel))
        got[depth] = top1(model, normalise(pixels, mean, std), labels)
        print(f"  resnet{depth} ({model.n} blocks/stage): top-1 {got[depth]:.2f} % on 1000 lossless "
              f"(README {want:.2f})")
        if abs(got[depth] - want) > 1e-9:
            sys.exit(f"{rel}: top-1 {got[depth]:.2f} %, shared/data/README.md says {want:.2f} %")
    return got


def write_teacher_golden(data, out, script, cmd, top1_all):
    rel, _ = TEACHERS[GOLDEN_DEPTH]
    teacher_path = os.path.join(data, rel)
    test_path = os.path.join(data, TESTSET)
    model, mean_np, std_np = load_teacher(teacher_path)
    labels_np, pixels_np = read_records(test_path, N_IMAGES)
    x = normalise(pixels_np, mean_np, std_np)
    labels = torch.from_numpy(labels_np)
    nb = 3 * model.n

    with torch.no_grad():
        logits = model(x)
        feats = [b.body_out.clone() for b in model.blocks()]
        model64 = copy_model(model, torch.float64).eval()
        logits64 = model64(x.double())
    _, loss, grads, grad_input = train_step(model, x, labels)
    _, loss64, _, _ = train_step(model64, x.double(), labels)

    path = os.path.join(out, "resnet56_golden.h5")
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        put(f, "input", x.numpy())
        put(f, "labels", labels_np, np.int32)
        put(f, "logits", logits.numpy())
        put(f, "logits_f64", logits64.numpy(), np.float64)
        for i in FEATURES_FULL:
            put(f, f"features/F{i}", feats[i - 1][:1].numpy())
        for i, a in enumerate(feats):
            put(f, f"features_chmean/F{i + 1}", a.double().mean(dim=(2, 3)).numpy(), np.float64)
        put(f, "loss_ce", loss.numpy())
        put(f, "loss_ce_f64", loss64.numpy(), np.float64)
        for k, g in grads.items():
            if g.numel() <= GRAD_FULL_MAX:
                put(f, f"grad/{k}", g.numpy())
            else:
                put(f, f"grad_sample/{k}", g.flatten()[::GRAD_SAMPLE_STRIDE].numpy())
                put(f, f"grad_l2/{k}", l2(g), np.float64)
        put(f, "grad_input", grad_input.numpy())

        f.attrs["description"] = (
            "ResNet-56 (option-A pad shortcut, real teacher) golden values from an independent PyTorch "
            "reference; see tools/make_deep_fixtures.py for the layout")
        provenance(f, script, cmd, test_path)
        f.attrs["teacher_file"] = rel
        f.attrs["teacher_sha256"] = sha256(teacher_path)
        f.attrs["data_records"] = f"0..{N_IMAGES - 1}"
        f.attrs["normalisation"] = "((u8.float()/255.0) - mean)/std in float32, mean/std = teacher input_mean/input_std"
        f.attrs["input_mean"] = mean_np
        f.attrs["input_std"] = std_np
        f.attrs["depth"] = GOLDEN_DEPTH
        f.attrs["blocks_per_stage"] = model.n
        f.attrs["shortcut"] = "pad"
        f.attrs["features_full"] = ",".join(f"F{i}" for i in FEATURES_FULL)
        f.attrs["grad_full_max"] = GRAD_FULL_MAX
        f.attrs["grad_sample_stride"] = GRAD_SAMPLE_STRIDE
        f.attrs["teacher_top1_lossless1000"] = top1_all
        f.attrs["teacher_top1_detail"] = (f"top-1 % of this model definition (f32, eval) on all 1000 records "
                                          f"of {TESTSET}; shared/data/README.md says 92.60")

    print(f"wrote {path}: {os.path.getsize(path)} bytes")
    print(f"  labels {labels_np.tolist()} argmax {logits.argmax(1).tolist()}  loss {loss.item():.7g} "
          f"(f64 {loss64.item():.9g})  body outputs {nb}")
    print(f"  max |logits f32 - f64| {(logits.double() - logits64).abs().max().item():.3g}, "
          f"max |logit| {logits.abs().max().item():.3g}")


def write_random_golden(out, script, cmd):
    path = os.path.join(out, "resnet_random_golden.h5")
    labels_np = np.asarray(RANDOM_LABELS, dtype=np.int64)
    labels = torch.from_numpy(labels_np)
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        probe = CifarResNet(110, "conv1x1")  # has every role and a layer3.17
        roles = param_roles(probe)
        for k in FORMULA_CHECK_KEYS:
            vals, bits = formula_values(k, FORMULA_CHECK_N, *roles[k]), formula_bits(k, FORMULA_CHECK_N)
            for j in range(FORMULA_CHECK_N):
                zj, vj = formula_scalar(k, j, *roles[k])
                assert int(bits[j]) == zj and vals[j].tobytes() == vj.tobytes(), (k, j)
            put(f, f"formula_check/{k}", vals)
            put(f, f"formula_check_u64/{k}", bits, np.uint64)
            d = f[f"formula_check/{k}"]
            d.attrs["shape"] = np.asarray(probe.state_dict()[k].shape, dtype=np.int32)
            d.attrs["role"] = roles[k][0]
            d.attrs["fan_in"] = roles[k][1]

        for group, depth, shortcut in RANDOM_NETS:
            model = formula_model(depth, shortcut)
            sd = model.state_dict()
            keys = state_keys(model)
            x = random_input(len(labels_np))
            with torch.no_grad():
                logits = model(x)
                feats = [b.body_out.clone() for b in model.blocks()]
                model64 = copy_model(model, torch.float64).eval()
                logits64 = model64(x.double())
            _, loss, grads, grad_input = train_step(model, x, labels)
            _, loss64, grads64, grad_input64 = train_step(model64, x.double(), labels)

            g = f.create_group(group)
            g.attrs["depth"] = depth
            g.attrs["blocks_per_stage"] = model.n
            g.attrs["shortcut"] = shortcut
            g.attrs["num_classes"] = 10
            g.attrs["n_keys"] = len(keys)
            g.attrs["n_trainable"] = len(grads)
            g.attrs["n_values"] = sum(sd[k].numel() for k in keys)
            # Per-key values go into a few packed arrays (one HDF5 dataset per key costs ~350 bytes).
            put(g, "keys", names(keys), KEY_DTYPE)
            put(g, "key_shape", [list(sd[k].shape) + [0] * (4 - sd[k].dim()) for k in keys], np.int32)
            sums = [[sd[k].double().sum().item(), sd[k].double().pow(2).sum().item()] for k in keys]
            put(g, "weight_sum", np.array(sums), np.float64)
            put(g, "input", x.numpy())
            put(g, "labels", labels_np, np.int32)
            put(g, "logits", logits.numpy())
            put(g, "logits_f64", logits64.numpy(), np.float64)
            for i, a in enumerate(feats):
                put(g, f"features_chmean/F{i + 1}", a.double().mean(dim=(2, 3)).numpy(), np.float64)
            put(g, "loss_ce", loss.numpy())
            put(g, "loss_ce_f64", loss64.numpy(), np.float64)
            trainable = list(grads)
            strides = [1 if grads[k].numel() <= RANDOM_GRAD_FULL_MAX else RANDOM_GRAD_SAMPLE_STRIDE
                       for k in trainable]
            parts = [grads[k].flatten()[::s].numpy() for k, s in zip(trainable, strides)]
            put(g, "trainable", names(trainable), KEY_DTYPE)
            put(g, "grad_stride", strides, np.int32)
            put(g, "grad_offset", np.cumsum([0] + [len(p) for p in parts]), np.int64)
            put(g, "grad_values", np.concatenate(parts))
            put(g, "grad_l2", [l2(grads[k]) for k in trainable], np.float64)
            put(g, "grad_l2_f64", [l2(grads64[k]) for k in trainable], np.float64)
            put(g, "grad_input", grad_input.numpy())
            worst_rel = max((grads[k].double() - grads64[k]).abs().max().item() /
                            max(grads64[k].abs().max().item(), 1e-300) for k in trainable)
            if depth == 110:
                model_tb = copy_model(model).train()
                with torch.no_grad():
                    logits_tb = model_tb(x)
                put(g, "train_bn/logits", logits_tb.numpy())
                put(g, "train_bn/loss_ce", F.cross_entropy(logits_tb, labels).numpy())
            g.attrs["description"] = (f"ResNet-{depth}, {shortcut} shortcut, weights from the formula in "
                                      "tools/make_deep_fixtures.py (tests/deep_weights.h)")

            fm = [a.abs().max().item() for a in feats]
            print(f"  {group}: {len(keys)} keys, {g.attrs['n_values']} values; logits max |.| "
                  f"{logits.abs().max().item():.3g}, image 0-1 logit diff rms "
                  f"{(logits[0] - logits[1]).pow(2).mean().sqrt().item():.3g}; max |F| first/last "
                  f"{fm[0]:.3g}/{fm[-1]:.3g} (max {max(fm):.3g}); loss {loss.item():.6g} "
                  f"(f64 {loss64.item():.9g})")
            gi_err = (grad_input.double() - grad_input64).abs().max().item()
            print(f"    max |logits f32 - f64| {(logits.double() - logits64).abs().max().item():.3g}; worst "
                  f"grad |f32-f64|/max|f64| {worst_rel:.3g}; grad_input {gi_err:.3g} "
                  f"of max {grad_input64.abs().max().item():.3g}")
            if depth == 110:
                print(f"    train-BN logits max |.| {logits_tb.abs().max().item():.3g}")

        f.attrs["description"] = ("Random-weight CIFAR ResNets (weights from a formula, not stored) golden "
                                  "values from an independent PyTorch reference; see "
                                  "tools/make_deep_fixtures.py for the layout and the formula")
        provenance(f, script, cmd)
        f.attrs["grad_full_max"] = RANDOM_GRAD_FULL_MAX
        f.attrs["grad_sample_stride"] = RANDOM_GRAD_SAMPLE_STRIDE
        f.attrs["formula"] = (
            "h=FNV-1a-64(key bytes); x=splitmix64(h+j) (z=s+0x9e3779b97f4a7c15; "
            "z=(z^(z>>30))*0xbf58476d1ce4e5b9; z=(z^(z>>27))*0x94d049bb133111eb; x=z^(z>>31)); "
            "u=(x>>11)*2^-53; float32 of, in double: "
            "conv weight (2u-1)*sqrt(3.0/(Ci*kh*kw)); linear.weight and linear.bias (2u-1)*sqrt(3.0/64); "
            "layerS.B.bn2.weight (0.5+u)*0.5; other BN weight 0.5+u; BN bias and running_mean 0.2*(u-0.5); "
            "running_var 0.5+u")
        f.attrs["input_recipe"] = ("stored, not to be recomputed: bilinear 4x4->32x32 of (2u-1)*sqrt(3) with "
                                   "key input.coarse plus 0.5*(2u-1)*sqrt(3) with key input, divided by its std")
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder (holds teachers/ and cifar-10-batches-bin/)")
    ap.add_argument("--out", required=True, help="output folder (tests/fixtures)")
    args = ap.parse_args()
    torch.manual_seed(0)
    script = os.path.abspath(__file__)
    cmd = " ".join(sys.argv[1:])

    print("teachers (model definition check):")
    got = check_teachers(args.data)
    os.makedirs(args.out, exist_ok=True)
    write_teacher_golden(args.data, args.out, script, cmd, got[GOLDEN_DEPTH])
    write_random_golden(args.out, script, cmd)


if __name__ == "__main__":
    main()
