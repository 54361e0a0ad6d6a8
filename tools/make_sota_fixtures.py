#!/usr/bin/python3
"""Golden fixtures for tests/plugin_sota.c: the losses of the synq, hast,
hast_set and intraq_set plugins in PyTorch (float64 unless noted),
independent of akt's C code, on fixed tensors.

    /usr/bin/python3 tools/make_sota_fixtures.py --out tests/fixtures

Inputs are generated on both sides from the integer hash of
tools/make_loss_fixtures.py (imported: one copy), exact in float32:
  B = 2, C = 10; z_T = 16 u(1), z_S = 8 u(2) (flat [B,C]), F_T/F_S as there
  labels: [argmax z_T[0], argmin z_T[1]] (one easy and one hard sample, stored)
  soft target: 0.75 on y_b, 0.25 on (y_b + 3) % C
  classifier inputs h_T = |F_T9|, h_S = |F_S9|   [B,64,8,8] (post-ReLU-like)
  classifier weights W_T = u(30) / 2, W_S = W_T + u(31) / 8   [C,64] float32
  images x = 2 u(40)   [B,3,32,32];  BN input x_bn = u(50)   [B,16,4,4]
  pooled class means mu = |u(61)| [B,64], masks as in each case

Layout:
  labels [B] i32;  grad_index [9,K] i64 (the loss fixture's rule)
  lowpass/d<d0>        [B,3,32,32] f32: SynQ's apply_filters (torch.fft, float32)
  synq/<case>          attrs params, gen_logit, soft; loss, metric/<name>,
                       grad_logits [B,C], grad_h [128] (d loss / d h_S at every
                       64th element), grad_h_scale [1] (max |d loss / d h_S|),
                       grad_feat [9,K], grad_feat_scale [9]
  gen/<case>           attrs params; loss, metric/gen.focal, gen.bns,
                       grad_logits [B,C], grad_bn [B,16,4,4]
  intraq/<case>        attrs params (m_lo, m_hi, bns), mask [B] f32, target [B] f32;
                       loss, metric/{bns,target,cos_lo,cos_hi}, grad_logits,
                       grad_h [128], grad_h_scale [1] (d loss / d h_T), grad_bn

Definitions follow the official code (SynQ v1.1 trainer_direct.py and
gradcam.py; HAST and IntraQ data_generate/distill_data.py) with the choices
documented in plugins/README.md ("Methods and the choices made").
"""
import argparse
import os
import sys
import warnings

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_loss_fixtures import (B, C, K, SHAPES, channel_map, features, h32, kl,  # noqa: E402
                                selected_maps, spatial_map, u)

SYNQ_DEFAULTS = {"logit": "auto", "T": 20.0, "alpha": 20.0, "lambda_ce": 0.5, "tau": 0.5,
                 "lambda_cam": 50.0, "d0": 80.0, "lambda_fa": 0.0, "rfd": "false",
                 "lambda": 1000.0, "T_fd": 8.0, "maps": "all"}
# name, params, generator logit loss, soft target
SYNQ_CASES = [
    ("defaults_kd", "", "kd", 0),
    ("synq_form_soft", "logit=synq tau=0.7 lambda_cam=200", "kd", 1),
    ("entropy_fa", "lambda_fa=1000 lambda_ce=5", "entropy", 0),
    ("with_akt", "rfd=true maps=last_stage lambda=250 T_fd=4 lambda_cam=20", "kd", 0),
    ("no_cam_all_easy", "lambda_cam=0 tau=1 lambda_ce=1", "kd", 0),
    ("hard_only_cam", "tau=0 lambda_ce=3 lambda_cam=1000 logit=kd", "entropy", 1),
]
GEN_CASES = [("hast_defaults", 10.0, 2.0, 1.0), ("hast_half", 1.0, 0.5, 0.1),
             ("gdfq_like", 10.0, 0.0, 1.0)]
# name, margin lo, margin hi, bns weight, mask, target
INTRAQ_CASES = [("defaults", 0.05, 0.8, 1.0, [1.0, 0.0], [0.97, 1.0]),
                ("active_margins", 0.5, 0.1, 1.0, [1.0, 1.0], [1.0, 0.96])]


def parse(s):
    p = dict(SYNQ_DEFAULTS)
    for kv in s.split():
        k, v = kv.split("=")
        assert k in p, k
        p[k] = v if isinstance(SYNQ_DEFAULTS[k], str) else float(v)
    return p


def lowpass_official(images, d_zero):
    """SynQ v1.1 Trainer.apply_filters, float32 as the code runs it."""
    _, _, height, width = images.shape
    cx, cy = width // 2, height // 2
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    h = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * d_zero ** 2))[None, None]
    f = torch.fft.fftshift(torch.fft.fft2(images, dim=(-2, -1)), dim=(-2, -1)) * h
    return torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1)), dim=(-2, -1)).real


def cam(h, w, z):
    """Grad-CAM of the classifier's input for each row's own prediction."""
    c = z.argmax(1)
    hw = h.shape[2] * h.shape[3]
    alpha = (w[c] / hw).clamp(min=1e-10)
    s = F.relu((alpha[:, :, None, None] * h).sum(1, keepdim=True))
    s = F.interpolate(s, size=(32, 32), mode="bilinear", align_corners=False)
    mn = s.view(s.shape[0], -1).min(1)[0].view(-1, 1, 1, 1)
    mx = s.view(s.shape[0], -1).max(1)[0].view(-1, 1, 1, 1)
    return (s - mn) / (mx - mn + 1e-10)


def fa_map(f):
    return F.normalize((f * f).mean((2, 3)), dim=1)


def synq_case(params, gen_logit, soft, inp):
    zt, zs0, labels, target, fts, fss0, hT, hS0, WT, WS = inp
    zs = zs0.clone().requires_grad_(True)
    hS = hS0.clone().requires_grad_(True)
    fss = [f.clone().requires_grad_(True) for f in fss0]
    p = parse(params)
    T = p["T"]
    kind = gen_logit if p["logit"] == "auto" else p["logit"]
    if kind == "entropy":
        d = (zt - zs) / T
        soft_t = -T * T * (-(F.softmax(d, 1) * F.log_softmax(d, 1)).sum(1)).mean()
    else:
        kld = F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1),
                       reduction="mean" if kind == "kd" else "batchmean")
        soft_t = (T * T if kind == "kd" else p["alpha"] * T * T) * kld
    pt = F.softmax(zt, 1).gather(1, labels[:, None]).squeeze(1)
    mask = ((1 - pt) < p["tau"]).double()
    ls = F.log_softmax(zs, 1)
    if soft:
        ce = -(mask[:, None] * target * ls).sum() / B
    else:
        ce = -(mask * ls.gather(1, labels[:, None]).squeeze(1)).sum() / B
    loss = soft_t + p["lambda_ce"] * ce
    metrics = {"loss.logit": soft_t.item(), "loss.ce": ce.item(), "loss.easy": mask.mean().item()}
    if p["lambda_cam"] != 0:
        with torch.no_grad():
            mt = cam(hT, WT, zt)
        L_cam = F.mse_loss(cam(hS, WS, zs), mt)
        metrics["loss.cam"] = L_cam.item()
        loss = loss + p["lambda_cam"] * L_cam
    if p["lambda_fa"] != 0:
        fa = sum(((fa_map(fs) - fa_map(ft)) ** 2).mean() for fs, ft in zip(fss, fts))
        metrics["loss.fa"] = fa.item()
        loss = loss + p["lambda_fa"] * fa
    feat = 0.0
    if p["rfd"] == "true":
        sp = ch = 0
        for i in selected_maps(p["maps"], 9):
            sp = sp + kl(spatial_map(fss[i]), spatial_map(fts[i]), p["T_fd"], "sum")
            ch = ch + kl(channel_map(fss[i]), channel_map(fts[i]), p["T_fd"], "sum")
        metrics["loss.spatial"], metrics["loss.channel"] = sp.item(), ch.item()
        loss = loss + p["lambda"] * (sp + ch)
        feat = p["lambda"] * (sp + ch).item()
    metrics["loss.feature"] = feat
    loss.backward()
    gf = [f.grad if f.grad is not None else torch.zeros_like(f) for f in fss]
    gh = hS.grad if hS.grad is not None else torch.zeros_like(hS)
    # the official masking adds log(C) per hard sample (no gradient): shown, not used
    off = ce.item() + (B - mask.sum().item()) * np.log(C) / B
    return loss.item(), metrics, zs.grad, gh, gf, off


def put_sampled(g, name, grad):
    """every 64th element of a [B,64,8,8] gradient, and its largest magnitude"""
    flat = grad.reshape(-1).numpy()
    g[name] = flat[::64].copy()
    g[name + "_scale"] = np.array([np.abs(flat).max()])


def bns(xbn):
    mu = xbn.mean((0, 2, 3))
    var = xbn.var((0, 2, 3), unbiased=False)
    return (mu ** 2).mean() + ((var - 1) ** 2).mean()  # running mean 0, var 1


def focal(z, labels, gamma):
    p = F.softmax(z, 1).gather(1, labels[:, None]).squeeze(1)
    return ((1 - p).pow(gamma) * F.cross_entropy(z, labels, reduction="none")).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    # kl_div's 'mean' is the legacy 1/(B*C) reduction the kd loss uses on purpose
    warnings.filterwarnings("ignore", message="reduction: 'mean' divides")

    zt32, zs32 = u(1, B * C) * np.float32(16), u(2, B * C) * np.float32(8)
    zt32, zs32 = zt32.reshape(B, C), zs32.reshape(B, C)
    labels = np.array([zt32[0].argmax(), zt32[1].argmin()], dtype=np.int32)
    p_y = [float(F.softmax(torch.tensor(zt32[b].astype(np.float64)), 0)[labels[b]])
           for b in range(B)]
    assert 1 - p_y[0] < 0.5 and 1 - p_y[1] > 0.7, p_y  # one easy, one hard sample
    target = np.zeros((B, C))
    for b, y in enumerate(labels):
        target[b, y] += 0.75
        target[b, (y + 3) % C] += 0.25
    feats = [features(l) for l in range(9)]
    hT32, hS32 = np.abs(feats[8][0]), np.abs(feats[8][1])
    WT32 = u(30, C * 64) * np.float32(0.5)
    WS32 = WT32 + u(31, C * 64) * np.float32(0.125)
    x32 = (u(40, B * 3 * 32 * 32) * np.float32(2)).reshape(B, 3, 32, 32)
    xbn32 = u(50, B * 16 * 4 * 4).reshape(B, 16, 4, 4)
    mu32 = np.abs(u(61, B * 64)).reshape(B, 64)
    d = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))
    inp = (d(zt32), d(zs32), torch.tensor(labels.astype(np.int64)), d(target),
           [d(ft) for ft, _ in feats], [d(fs) for _, fs in feats], d(hT32), d(hS32),
           d(WT32).reshape(C, 64), d(WS32).reshape(C, 64))
    grad_index = np.array([[0, n // 3, n // 2 + 7, n - 1]
                           for n in (B * c * h * w for c, h, w in SHAPES)], dtype=np.int64)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sota_golden.h5")
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "tools/make_sota_fixtures.py"
        f.attrs["torch"] = str(torch.__version__)
        f["labels"] = labels
        f["grad_index"] = grad_index
        f["check/x"] = x32.reshape(-1)[:16]
        f["check/W_S"] = WS32[:16]
        for d0 in (80, 20, 5):
            out = lowpass_official(torch.tensor(x32), float(d0)).float()
            f[f"lowpass/d{d0}"] = out.numpy()
            print(f"lowpass d0={d0}: |x - filtered| max {np.abs(out.numpy() - x32).max():.4g}")
        for name, params, gen, soft in SYNQ_CASES:
            loss, metrics, gz, gh, gf, off = synq_case(params, gen, soft, inp)
            g = f.create_group(f"synq/{name}")
            g.attrs["params"], g.attrs["gen_logit"], g.attrs["soft"] = params, gen, soft
            g["loss"] = np.array([loss])
            for k, v in metrics.items():
                g[f"metric/{k}"] = np.array([v])
            g["grad_logits"] = gz.numpy()
            put_sampled(g, "grad_h", gh)
            flat = [x.reshape(-1).numpy() for x in gf]
            g["grad_feat"] = np.stack([flat[l][grad_index[l]] for l in range(9)])
            g["grad_feat_scale"] = np.array([np.abs(x).max() for x in flat])
            print(f"synq {name:16s} loss {loss:.10g}  " +
                  " ".join(f"{k}={v:.6g}" for k, v in metrics.items()) +
                  f"  (official CE with its log C constant: {off:.6g})")
        zt = inp[0]
        lab = inp[2]
        for name, beta, gamma, wb in GEN_CASES:
            z = zt.clone().requires_grad_(True)
            xb = d(xbn32).requires_grad_(True)
            fo, bn = focal(z, lab, gamma), bns(xb)
            loss = beta * fo + wb * bn
            loss.backward()
            g = f.create_group(f"gen/{name}")
            g.attrs["params"] = f"beta={beta:g} gamma={gamma:g} bns={wb:g}"
            g["loss"] = np.array([loss.item()])
            g["metric/gen.focal"] = np.array([fo.item()])
            g["metric/gen.bns"] = np.array([bn.item()])
            g["grad_logits"] = z.grad.numpy()
            g["grad_bn"] = xb.grad.numpy()
            print(f"gen {name}: loss {loss.item():.10g} focal {fo.item():.6g} bns {bn.item():.6g}")
        for name, mlo, mhi, wb, mask, tgt in INTRAQ_CASES:
            z = zt.clone().requires_grad_(True)
            h = inp[6].clone().requires_grad_(True)
            xb = d(xbn32).requires_grad_(True)
            m, t = torch.tensor(mask), torch.tensor(tgt)
            onehot = F.one_hot(lab, C).double()
            newlab = onehot * t[:, None]
            l_t = ((F.softmax(z, 1) - newlab) ** 2 * onehot).sum(1).mean()
            pooled = h.mean((2, 3))
            cos = F.cosine_similarity(pooled, d(mu32), dim=1, eps=1e-6)
            c_lo = (torch.clamp(mlo - (1 - cos), min=0) * m).sum() / (m.sum() + 1e-6)
            c_hi = (torch.clamp((1 - cos) - mhi, min=0) * m).sum() / (m.sum() + 1e-6)
            bn = bns(xb)
            loss = wb * bn + l_t + c_lo + c_hi
            loss.backward()
            g = f.create_group(f"intraq/{name}")
            g.attrs["params"] = f"m_lo={mlo:g} m_hi={mhi:g} bns={wb:g}"
            g["mask"] = np.array(mask, dtype=np.float32)
            g["target"] = np.array(tgt, dtype=np.float32)
            g["loss"] = np.array([loss.item()])
            for k, v in (("bns", bn), ("target", l_t), ("cos_lo", c_lo), ("cos_hi", c_hi)):
                g[f"metric/{k}"] = np.array([v.item()])
            g["grad_logits"] = z.grad.numpy()
            put_sampled(g, "grad_h", h.grad)
            g["grad_bn"] = xb.grad.numpy()
            print(f"intraq {name}: loss {loss.item():.10g} cos {cos.tolist()} "
                  f"lo {c_lo.item():.6g} hi {c_hi.item():.6g}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
