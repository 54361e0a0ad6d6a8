#!/usr/bin/python3
"""Golden fixtures for tests/plugin_losses.c: the student losses of SPEC 4 in
PyTorch float64, independent of akt's C code.

Run with Debian's interpreter (it has torch and h5py):

    /usr/bin/python3 tools/make_loss_fixtures.py --out tests/fixtures

Inputs are not stored: both sides generate them from an integer hash, exact
in float32 (every scale is a power of two and each sum has one rounding), so
the file stays small. tests/plugin_losses.c has the same generator; the file
keeps a few generated values (check/*) so a drift between the two shows as
such rather than as a wrong loss.

  u(s, j)    = (hash(s, j) >> 8) * 2^-23 - 1, in [-1, 1), float32
  hash(s, j) = uint32 mix of j*0x9E3779B1 + s*0x85EBCA77 + 0x165667B1 (see h32)
  B = 2, C = 10
  z_T[j] = 8 u(1, j),  z_S[j] = 8 u(2, j)        (flat over [B,C])
  labels = [3, 7]; soft target: 0.75 on y_b, 0.25 on (y_b + 3) % C
  F_l (l = 0..8) of shape [2,16,32,32] x3, [2,32,16,16] x3, [2,64,8,8] x3,
  flat j = (b*C + c)*H*W + p, with k_c = 2^(hash(100+l, c) % 3 - 1),
  k_p = 2^(hash(200+l, p) % 2 - 1):
    F_T = u(10+l, j) * (k_c k_p),  F_S = F_T + u(20+l, j) * (k_c k_p / 4)
  (a student close to its teacher: the nearly uniform regime of SPEC 7)

Layout (f64 unless noted):
  check/z_T, check/z_S        [B*C] f32  generated logits
  check/F_T0, check/F_S8      [16]  f32  first 16 values of F_T of F_1, F_S of F_9
  grad_index                  [9,K] i64  flat indices of the sampled gradients
  cases/<name>                group, attributes:
      variant    logit | spatial | channel | akt (the descriptor name)
      params     "key=value ..." as a user writes them (empty: defaults)
      gen_logit  kd | entropy (the generator's default logit loss)
      soft       1: the soft target is passed, 0: labels only
    loss                      [1]    the scalar loss
    metric/<name>             [1]    loss.logit, loss.spatial, loss.channel,
                                     loss.feature (only those the variant reports)
    grad_logits               [B,C]  d loss / d z_S
    grad_feat                 [9,K]  d loss / d F_S at grad_index (0 for logit)
    grad_feat_scale           [9]    max |d loss / d F_S| over each whole tensor
  cases/sec7_F1 also has kl_f32 [1]: the same KL from a float32 PyTorch
  pipeline (log_softmax, softmax, kl_div), to show how far float32 lands.

Definitions (SPEC 4): p = softmax(z/T);
  kd       T^2 * kl_div(log_softmax(z_S/T), softmax(z_T/T), 'mean') + CE(z_S, y or soft)
  entropy  -T^2 * mean_b H(softmax((z_T - z_S)/T))
  spatial  a = mean_c F^2 per position, / max(||.||_2, 1e-12)
  channel  a = softmax_c(mean_p F^2)
  KL_i     kl_div(log_softmax(a_S/T_fd), softmax(a_T/T_fd), 'sum' | 'batchmean')
  R        sum or mean over the selected maps; L_RFD = lambda * R(KL_sp + KL_ch)
  L        L_logit + L_RFD, or with alpha >= 0: alpha L_RFD + (1 - alpha) L_logit
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

B, C = 2, 10
LABELS = [3, 7]
SHAPES = [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3
K = 4
DEFAULTS = {"logit": "auto", "T": 20.0, "lambda": 1000.0, "alpha": -1.0, "T_fd": 8.0,
            "map_reduction": "sum", "kl_reduction": "sum", "maps": "all"}

# name, variant, params, generator logit loss, soft target
CASES = [
    ("logit_kd", "logit", "", "kd", 0),
    ("logit_kd_soft", "logit", "", "kd", 1),
    ("logit_entropy", "logit", "", "entropy", 0),
    ("logit_forced_kd", "logit", "logit=kd T=4", "entropy", 0),
    ("spatial", "spatial", "", "kd", 0),
    ("channel", "channel", "", "kd", 0),
    ("akt", "akt", "", "kd", 0),
    ("akt_mean_batchmean", "akt", "map_reduction=mean kl_reduction=batchmean", "entropy", 0),
    ("akt_alpha", "akt", "alpha=0.3", "kd", 1),
    ("akt_maps", "akt", "maps=1,3,5,7,9 T_fd=4 lambda=250 logit=entropy", "kd", 0),
    ("channel_batchmean", "channel", "kl_reduction=batchmean T_fd=2", "kd", 0),
    # SPEC 7: only F_1 (32x32), loss = KL_sp,1 exactly
    ("sec7_F1", "spatial", "maps=1 alpha=1 lambda=1", "kd", 0),
]

M32 = np.uint64(0xFFFFFFFF)


def h32(seed, j):
    """uint32 hash of (seed, index array); the C test has the same function."""
    j = np.asarray(j, dtype=np.uint64)
    x = (j * np.uint64(0x9E3779B1) + np.uint64(seed) * np.uint64(0x85EBCA77)
         + np.uint64(0x165667B1)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x2C1B3C6D)) & M32
    x ^= x >> np.uint64(12)
    x = (x * np.uint64(0x297A2D39)) & M32
    x ^= x >> np.uint64(15)
    return x


def u(seed, n):
    """n values in [-1, 1), exact in float32"""
    x = h32(seed, np.arange(n, dtype=np.uint64)) >> np.uint64(8)
    return (x.astype(np.float64) * 2.0**-23 - 1.0).astype(np.float32)


def features(l):
    c, h, w = SHAPES[l]
    kc = 2.0 ** (h32(100 + l, np.arange(c)).astype(np.int64) % 3 - 1)
    kp = 2.0 ** (h32(200 + l, np.arange(h * w)).astype(np.int64) % 2 - 1)
    k = np.broadcast_to((kc[:, None] * kp[None, :]).astype(np.float32), (B, c, h * w)).reshape(-1)
    n = B * c * h * w
    ft = u(10 + l, n) * k  # power-of-two scale: exact
    fs = ft + u(20 + l, n) * (k * np.float32(0.25))  # one rounding, as in C
    return ft.reshape(B, c, h, w), fs.reshape(B, c, h, w)


def parse_params(s):
    p = dict(DEFAULTS)
    for kv in s.split():
        k, v = kv.split("=")
        assert k in p, k
        p[k] = type(DEFAULTS[k])(v) if not isinstance(DEFAULTS[k], str) else v
    return p


def selected_maps(spec, n):
    """0-based body outputs of a loss.maps selection ("all", "last_stage",
    "1,3,5-9", ...), as akt_feature_select reads it (akt/distill.h)."""
    per = n // 3
    sel = set()
    for tok in spec.split(","):
        tok = tok.strip()
        if tok == "all":
            sel |= set(range(n))
        elif tok == "first_stage":
            sel |= set(range(per))
        elif tok == "last_stage":
            sel |= set(range(n - per, n))
        elif tok == "stage_ends":
            sel |= {per - 1, 2 * per - 1, n - 1}
        elif tok.startswith("stage"):
            s = int(tok[5:]) - 1
            sel |= set(range(s * per, (s + 1) * per))
        elif "-" in tok:
            a, b = (int(x) for x in tok.split("-"))
            sel |= set(range(a - 1, b))
        else:
            sel.add(int(tok) - 1)
    return sorted(sel)


def logit_loss(kind, zs, zt, T, target, soft):
    if kind == "entropy":
        d = (zt - zs) / T
        H = -(F.softmax(d, 1) * F.log_softmax(d, 1)).sum(1)
        return -T * T * H.mean()
    kd = T * T * F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1), reduction="mean")
    if soft:
        ce = -(target * F.log_softmax(zs, 1)).sum(1).mean()
    else:
        ce = F.cross_entropy(zs, torch.tensor(LABELS))
    return kd + ce


def spatial_map(f):
    n = (f * f).mean(1).flatten(1)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def channel_map(f):
    return F.softmax((f * f).mean((2, 3)), 1)


def kl(a_s, a_t, T, red):
    return F.kl_div(F.log_softmax(a_s / T, 1), F.softmax(a_t / T, 1), reduction=red)


def kl_centered(a_s, a_t, T):
    """The same KL rewritten to avoid cancellation: a check on the reference."""
    s, t = (a_s / T).double(), (a_t / T).double()
    d = t - s
    d = d - d.mean(1, keepdim=True)
    p, q = F.softmax(t, 1), F.softmax(s, 1)
    # KL = sum p d - log sum q e^d, with d centred so both terms are small
    return ((p * d).sum(1) - torch.log1p((q * torch.expm1(d)).sum(1))).sum()


def run_case(variant, params, gen_logit, soft, inputs):
    zt, zs0, target, fts, fss0 = inputs
    zs = zs0.clone().requires_grad_(True)
    fss = [f.clone().requires_grad_(True) for f in fss0]
    p = parse_params(params)
    kind = gen_logit if p["logit"] == "auto" else p["logit"]
    T = p["T"]
    L_logit = logit_loss(kind, zs, zt, T, target, soft)
    metrics = {"loss.logit": L_logit.item()}
    if variant == "logit":
        loss = L_logit
        metrics["loss.feature"] = 0.0
    else:
        red = p["kl_reduction"]
        sel = selected_maps(p["maps"], 9)
        r = 1.0 / len(sel) if p["map_reduction"] == "mean" else 1.0
        sp = ch = 0
        for i in sel:
            if variant in ("spatial", "akt"):
                sp = sp + kl(spatial_map(fss[i]), spatial_map(fts[i]), p["T_fd"], red)
            if variant in ("channel", "akt"):
                ch = ch + kl(channel_map(fss[i]), channel_map(fts[i]), p["T_fd"], red)
        if variant in ("spatial", "akt"):
            metrics["loss.spatial"] = r * sp.item()
        if variant in ("channel", "akt"):
            metrics["loss.channel"] = r * ch.item()
        rfd = p["lambda"] * r * (sp + ch)
        metrics["loss.feature"] = rfd.item()
        a = p["alpha"]
        loss = L_logit + rfd if a < 0 else a * rfd + (1 - a) * L_logit
    loss.backward()
    gf = [f.grad if f.grad is not None else torch.zeros_like(f) for f in fss]
    return loss.item(), metrics, zs.grad, gf


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)

    zt32, zs32 = u(1, B * C) * np.float32(8), u(2, B * C) * np.float32(8)
    target = np.zeros((B, C))
    for b, y in enumerate(LABELS):
        target[b, y] += 0.75
        target[b, (y + 3) % C] += 0.25
    feats = [features(l) for l in range(9)]
    inputs = (torch.tensor(zt32.astype(np.float64)).reshape(B, C),
              torch.tensor(zs32.astype(np.float64)).reshape(B, C),
              torch.tensor(target),
              [torch.tensor(ft.astype(np.float64)) for ft, _ in feats],
              [torch.tensor(fs.astype(np.float64)) for _, fs in feats])
    grad_index = np.array([[0, n // 3, n // 2 + 7, n - 1]
                           for n in (B * c * h * w for c, h, w in SHAPES)], dtype=np.int64)

    # The reference KL itself: kl_div against a cancellation-free rewrite.
    for i in (0, 8):
        for m in (spatial_map, channel_map):
            a, b = m(inputs[4][i]), m(inputs[3][i])
            ref, cen = kl(a, b, 8.0, "sum").item(), kl_centered(a, b, 8.0).item()
            print(f"F{i + 1} {m.__name__}: KL {ref:.6e}, centred rewrite rel. diff "
                  f"{abs(ref - cen) / cen:.1e}")
            assert abs(ref - cen) <= 1e-7 * cen

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "loss_golden.h5")
    with h5py.File(path, "w") as f:
        f["check/z_T"], f["check/z_S"] = zt32, zs32
        f["check/F_T0"] = feats[0][0].reshape(-1)[:16]
        f["check/F_S8"] = feats[8][1].reshape(-1)[:16]
        f["grad_index"] = grad_index
        for name, variant, params, gen_logit, soft in CASES:
            loss, metrics, gz, gf = run_case(variant, params, gen_logit, soft, inputs)
            g = f.create_group("cases/" + name)
            g.attrs["variant"], g.attrs["params"] = variant, params
            g.attrs["gen_logit"], g.attrs["soft"] = gen_logit, soft
            g["loss"] = np.array([loss])
            for k, v in metrics.items():
                g["metric/" + k] = np.array([v])
            g["grad_logits"] = gz.numpy()
            g["grad_feat"] = np.stack([gf[i].reshape(-1).numpy()[grad_index[i]]
                                       for i in range(9)])
            g["grad_feat_scale"] = np.array([gf[i].abs().max().item() for i in range(9)])
            print(f"{name:20s} loss {loss:.10g}  " +
                  "  ".join(f"{k[5:]} {v:.6g}" for k, v in metrics.items()))
        # SPEC 7: the same KL through float32 PyTorch, for comparison only
        a_s = spatial_map(torch.tensor(feats[0][1])).float()
        a_t = spatial_map(torch.tensor(feats[0][0])).float()
        k32 = kl(a_s, a_t, 8.0, "sum").item()
        k64 = f["cases/sec7_F1/loss"][0]
        f["cases/sec7_F1/kl_f32"] = np.array([k32])
        print(f"sec7_F1: float32 pipeline KL {k32:.6e} vs float64 {k64:.6e} "
              f"(rel. error {abs(k32 - k64) / k64:.1e})")

        f.attrs["description"] = "student loss goldens (SPEC 4) for tests/plugin_losses.c"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["numpy_version"] = np.__version__
        f.attrs["h5py_version"] = h5py.__version__
        f.attrs["python"] = sys.version.split()[0]
        f.attrs["command"] = ("/usr/bin/python3 tools/make_loss_fixtures.py "
                              + " ".join(sys.argv[1:]))
        f.attrs["script_sha256"] = sha256(os.path.abspath(__file__))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
