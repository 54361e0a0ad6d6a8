#!/usr/bin/python3
"""Write tests/fixtures/quant_golden.h5: PyTorch golden values for the fake quantizer and the optimizers.

Run with Debian's Python, the one that has torch:
    /usr/bin/python3 tools/make_quant_fixtures.py --data ../shared/data --out tests/fixtures

Checked by tests/golden_quant.c. Layout (float32 unless noted; C order):
  weight/<key>/input          a conv/FC weight of the teacher, as stored there
  weight/<key>/q<k>           per-output-channel fake quantization at k bits,
                              range = each row's min/max (SPEC 2)
  act/<case>/x                an activation-like tensor
  act/<case>/q<k>             per-tensor fake quantization; attributes lo, hi
                              (float32) on each q<k> give the range
  optim/p0 [n], optim/grads [3, n]          start point and the 3 gradients
  optim/<opt>/param, .../<state> [3, n]     values after steps 1..3; <opt> is
                              sgd_nesterov, sgd_momentum (state momentum_buffer),
                              adam, adam_gdfq (state exp_avg, exp_avg_sq);
                              hyper-parameters as attributes of the group
  sched/lr [E] (float64)      MultiStepLR learning rate per epoch; attributes
                              base_lr, gamma, milestones

The quantizer follows SPEC 2 with torch.round (half to even) and a true
division for the scale: torch evaluates `number / tensor` as
`number * tensor.reciprocal()`, one ulp off (SPEC 7), so the scale is
torch.div(tensor(2^k - 1), range). Each quantized tensor is checked here
against an independent numpy float32 computation, and the number of values
the official `number / tensor` form would change is stored as the attribute
rdiv_differs.
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np
import torch

TEACHER = "teachers/resnet20_cifar10_akamaster_optA.h5"
WEIGHT_KEYS = ["conv1.weight", "layer1.0.conv1.weight", "linear.weight"]
BITS = [2, 3, 4, 5, 8]
N_OPT = 37  # not a multiple of any vector width


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fake_quant(x, lo, hi, k, official_rdiv=False):
    """SPEC 2 in float32 torch ops; lo/hi broadcast against x."""
    n = 2 ** k - 1
    rng = torch.clamp(hi - lo, min=1e-8)
    if official_rdiv:
        s = n / rng  # what the GDFQ code writes: n * (1/rng)
    else:
        s = torch.div(torch.tensor(float(n), dtype=torch.float32), rng)
    zp = torch.round(s * lo) + 2 ** (k - 1)
    q = torch.clamp(torch.round(s * x - zp), -(2 ** (k - 1)), 2 ** (k - 1) - 1)
    return (q + zp) / s


def fake_quant_np(x, lo, hi, k):
    """The same in numpy float32, written independently."""
    f = np.float32
    x, lo, hi = (np.asarray(a, dtype=f) for a in (x, lo, hi))
    s = f(2 ** k - 1) / np.maximum(hi - lo, f(1e-8))
    zp = np.rint(s * lo) + f(2 ** (k - 1))
    q = np.clip(np.rint(s * x - zp), f(-(2 ** (k - 1))), f(2 ** (k - 1) - 1))
    out = (q + zp) / s
    assert out.dtype == np.float32
    return out


def per_channel(w, k, official_rdiv=False):
    rows = w.reshape(w.shape[0], -1)
    view = (-1,) + (1,) * (w.dim() - 1)
    lo = rows.min(dim=1).values.view(view)
    hi = rows.max(dim=1).values.view(view)
    return fake_quant(w, lo, hi, k, official_rdiv), lo.numpy(), hi.numpy()


def rdiv_effect(q, qr, lo, hi, k):
    """(values that differ at all, values on another level) between the
    true-division result q and the official reciprocal form qr."""
    step = (np.maximum(np.asarray(hi, np.float64) - np.asarray(lo, np.float64), 1e-8)) / (2 ** k - 1)
    d = np.abs(q.numpy().astype(np.float64) - qr.numpy().astype(np.float64))
    return int((d > 0).sum()), int((d > 0.5 * step).sum())


def same_bits(a, b):
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


def activation_cases(gen):
    """(name, x, {k: (lo, hi)}) with float32 x and ranges."""
    f = np.float32
    cases = []
    x = torch.relu(torch.randn(2, 8, 6, 6, generator=gen) * 1.5)
    cases.append(("relu", x, {k: (f(0.0), f(3.1)) for k in BITS}))  # some values clamp at hi
    x = torch.randn(576, generator=gen) * 1.2
    cases.append(("signed", x, {k: (f(-1.7), f(2.3)) for k in BITS}))
    # exact ties: lo = -0.75 and hi - lo = (2^k - 1)/4 make s = 4, zp = -3 + 2^(k-1),
    # and x = m/8 - 1.75 puts s*x - zp on every half integer
    m = torch.arange(0, 8 * 2 + 2 * 255 + 16, dtype=torch.float32)
    x = m / 8 - 1.75
    cases.append(("ties", x, {k: (f(-0.75), f(-0.75 + (2 ** k - 1) / 4)) for k in BITS}))
    x = torch.linspace(-1, 2, 97)
    cases.append(("degenerate", x, {k: (f(0.37), f(0.37)) for k in BITS}))  # hi == lo
    return cases


def sgd_run(p0, grads, **kw):
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.SGD([p], **kw)
    params, bufs = [], []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        params.append(p.detach().clone())
        bufs.append(opt.state[p]["momentum_buffer"].clone())
    return torch.stack(params), {"momentum_buffer": torch.stack(bufs)}


def adam_run(p0, grads, **kw):
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.Adam([p], **kw)
    params, m, v = [], [], []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        params.append(p.detach().clone())
        m.append(opt.state[p]["exp_avg"].clone())
        v.append(opt.state[p]["exp_avg_sq"].clone())
    return torch.stack(params), {"exp_avg": torch.stack(m), "exp_avg_sq": torch.stack(v)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder (holds teachers/)")
    ap.add_argument("--out", required=True, help="output folder (tests/fixtures)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    teacher_path = os.path.join(args.data, TEACHER)
    with h5py.File(teacher_path, "r") as f:
        weights = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float32)) for k in WEIGHT_KEYS}

    os.makedirs(args.out, exist_ok=True)
    out_path = os.path.join(args.out, "quant_golden.h5")
    comp = dict(compression="gzip", compression_opts=9, shuffle=True)

    def put(f, name, arr, dtype=np.float32, **attrs):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        ds = f.create_dataset(name, data=arr, **(comp if arr.size >= 256 else {}))
        for a, v in attrs.items():
            ds.attrs[a] = v
        return ds

    rdiv_total, flips_total, n_total = 0, 0, 0
    with h5py.File(out_path, "w", libver=("v110", "v110")) as f:
        for key, w in weights.items():
            put(f, f"weight/{key}/input", w.numpy())
            for k in BITS:
                q, lo, hi = per_channel(w, k)
                ref = fake_quant_np(w.numpy(), lo, hi, k)
                assert same_bits(q.numpy(), ref), f"torch and numpy differ: {key} {k} bits"
                qr, _, _ = per_channel(w, k, official_rdiv=True)
                rdiv, flips = rdiv_effect(q, qr, lo, hi, k)
                rdiv_total, flips_total, n_total = rdiv_total + rdiv, flips_total + flips, n_total + q.numel()
                put(f, f"weight/{key}/q{k}", q.numpy(), rdiv_differs=rdiv, rdiv_level_flips=flips)
        for name, x, ranges in activation_cases(gen):
            put(f, f"act/{name}/x", x.numpy())
            for k in BITS:
                lo, hi = ranges[k]
                q = fake_quant(x, torch.tensor(lo), torch.tensor(hi), k)
                ref = fake_quant_np(x.numpy(), lo, hi, k)
                assert same_bits(q.numpy(), ref), f"torch and numpy differ: {name} {k} bits"
                qr = fake_quant(x, torch.tensor(lo), torch.tensor(hi), k, official_rdiv=True)
                rdiv, flips = rdiv_effect(q, qr, lo, hi, k)
                rdiv_total, flips_total, n_total = rdiv_total + rdiv, flips_total + flips, n_total + q.numel()
                put(f, f"act/{name}/q{k}", q.numpy(), lo=np.float32(lo), hi=np.float32(hi),
                    rdiv_differs=rdiv, rdiv_level_flips=flips)

        p0 = torch.randn(N_OPT, generator=gen)
        grads = torch.randn(3, N_OPT, generator=gen)
        put(f, "optim/p0", p0.numpy())
        put(f, "optim/grads", grads.numpy())
        runs = {
            "sgd_nesterov": (sgd_run, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
            "sgd_momentum": (sgd_run, dict(lr=0.05, momentum=0.9, nesterov=False, weight_decay=1e-4)),
            "adam": (adam_run, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
            "adam_gdfq": (adam_run, dict(lr=1e-3, betas=(0.5, 0.999), eps=1e-8)),
        }
        for name, (fn, kw) in runs.items():
            params, state = fn(p0, grads, **kw)
            g = f.create_group(f"optim/{name}")
            for a, v in kw.items():
                g.attrs[a] = np.asarray(v, dtype=np.float64)
            put(f, f"optim/{name}/param", params.numpy())
            for sname, sval in state.items():
                put(f, f"optim/{name}/{sname}", sval.numpy())

        base_lr, gamma, milestones, epochs = 1e-4, 0.1, [3, 5, 5, 8], 10
        popt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(popt, milestones=milestones, gamma=gamma)
        lrs = []
        for _ in range(epochs):
            lrs.append(popt.param_groups[0]["lr"])
            popt.step()
            sched.step()
        put(f, "sched/lr", lrs, np.float64, base_lr=base_lr, gamma=gamma,
            milestones=np.asarray(milestones, np.int32))

        f.attrs["description"] = (
            "Fake quantizer (SPEC 2) and optimizer golden values from PyTorch, for "
            "tests/golden_quant.c; see tools/make_quant_fixtures.py for the layout")
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["numpy_version"] = np.__version__
        f.attrs["h5py_version"] = h5py.__version__
        f.attrs["python"] = sys.version.split()[0]
        f.attrs["command"] = "/usr/bin/python3 tools/make_quant_fixtures.py " + " ".join(sys.argv[1:])
        f.attrs["teacher_file"] = TEACHER
        f.attrs["teacher_sha256"] = sha256(teacher_path)
        f.attrs["script_sha256"] = sha256(os.path.abspath(__file__))
        f.attrs["quantizer"] = ("s = torch.div(tensor(2^k-1), clamp(hi-lo, min=1e-8)); "
                                "zp = round(s*lo) + 2^(k-1); q = clamp(round(s*x - zp), -2^(k-1), "
                                "2^(k-1)-1); out = (q + zp)/s, float32, torch.round = half to even")
        f.attrs["rdiv_differs_total"] = rdiv_total
        f.attrs["rdiv_level_flips_total"] = flips_total

    print(f"wrote {out_path}: {os.path.getsize(out_path)} bytes")
    print(f"  {n_total} quantized values; the official `n / tensor` scale changes {rdiv_total} of them, "
          f"{flips_total} to another level")


if __name__ == "__main__":
    main()
