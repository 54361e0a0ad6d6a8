#!/usr/bin/python3
"""PyTorch CPU reference for one zero-shot-quantization training iteration (SPEC 5).

Run with Debian's interpreter (it has torch 1.13 and h5py):

    /usr/bin/python3 tools/bench_zsq_torch.py [--batches 32 200] [--reps 10] [--warmup 3]
                                              [--depth 20]

Measures, for each batch size B, one iteration of
  zsq_gdfq_akt_bB    GDFQ generator + AKT loss
  zsq_adadfq_akt_bB  AdaDFQ generator + AKT loss
on the ResNet-20 teacher; with --depth D (32, 44, 56, ...) on the ResNet-D
teacher (teachers/resnetD_cifar10_akamaster_optA.h5), named zsq_gdfq_akt_rD_bB.
and prints one line per measurement on stdout, like
../shared/bench/torch_baseline.py and `akt bench-zsq`:

    name median_ms images_per_s

(details on stderr: min/median/max, the median of the generator and student
steps, and how many timed iterations were rejected because other processes
used the CPUs at the same time).

One iteration, as akt's training loop (core/run/train.c) runs it in epoch 0
with warmup_epochs = 0 (student SGD every iteration) and the range trackers on:
  generator step: z ~ N(0, I_100), y uniform; x = G(z, y) (SPEC 3 trunk, BN eps
    0.8, batch statistics); teacher forward (BN eval mode; every BN input seen
    by a forward hook for the BNS loss; logits and the 3n body outputs kept);
    adadfq: the student forward on the non-detached x (student parameter
    gradients off, as akt's host does); L_G (gdfq: CE + 0.1 BNS; adadfq: hinge
    + L_bal + BNS); backward; Adam (lr 1e-3, betas 0.5/0.999).
  student step: student forward on x.detach(); L_Q = logit loss (gdfq: T^2 KL
    with the legacy 1/(B*C) 'mean' reduction + CE, T = 20; adadfq: -T^2 mean
    entropy of softmax((z_T - z_Q)/T)) + 1000 * sum over the 3n body outputs of
    KL(sum) on the spatial and channel maps (T_fd = 8), with the teacher's
    logits and body outputs from the generator step, detached; backward; SGD
    (Nesterov, momentum 0.9, weight decay 1e-4, lr 1e-4).
Student: W4A4 fake quantization (SPEC 2: per-output-channel min/max weights on
every conv and the FC, a range-tracked quantizer after each of the 6n+1 ReLUs,
straight-through backward), BN in eval mode with trainable gamma/beta.
The feature KL is computed in float32 as the published code does; --kl-double
computes it in float64 as akt does (SPEC 7).

Timing: --warmup untimed iterations, then the median of --reps timed ones, with
torch.set_num_threads(--threads); iterations during which other processes used
the CPUs are rejected and retried after a quiet pause (see measure()). By default the measurements run in a child
process under GLIBC_TUNABLES that keep freed tensor memory in the heap (the
torch_baseline.py '_mt' setting, PyTorch's better case on these VMs);
--malloc default keeps the inherited glibc settings (names get suffix _defmalloc),
--malloc both runs both.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEACHER = "teachers/resnet{depth}_cifar10_akamaster_optA.h5"


# --------------------------------------------------------------------------
# fake quantizer (SPEC 2), straight-through backward
# --------------------------------------------------------------------------
class FakeQuantSTE(torch.autograd.Function):
    """out = (clamp(rint(s*x - zp), qmin, qmax) + zp) / s;  d out / d x := 1."""

    @staticmethod
    def forward(ctx, x, s, zp, qmin, qmax):
        return (torch.clamp(torch.round(s * x - zp), qmin, qmax) + zp) / s

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None, None


def fq_weight(w, bits):
    """Per output channel, lo/hi = the row's current min/max."""
    half = float(2 ** (bits - 1))
    lo, hi = torch.aminmax(w.detach().flatten(1), dim=1)
    s = float(2 ** bits - 1) / (hi - lo).clamp_min(1e-8)
    zp = torch.round(s * lo) + half
    shape = (-1,) + (1,) * (w.dim() - 1)
    return FakeQuantSTE.apply(w, s.view(shape), zp.view(shape), -half, half - 1)


class ActQuant(nn.Module):
    """Per-tensor quantizer with the SPEC 2 range tracker (as_coded EMA)."""

    def __init__(self, bits, beta=0.9):
        super().__init__()
        self.bits, self.beta = bits, beta
        self.lo = self.hi = 0.0
        self.c = 1.0
        self.tracking = True

    def forward(self, x):
        if self.tracking:
            mn, mx = torch.aminmax(x.detach())
            b = self.beta
            self.c *= b
            self.lo = (b * self.lo + (1 - b) * mn.item()) / (1 - self.c)
            self.hi = (b * self.hi + (1 - b) * mx.item()) / (1 - self.c)
        half = float(2 ** (self.bits - 1))
        s = float(2 ** self.bits - 1) / max(self.hi - self.lo, 1e-8)
        zp = float(round(s * self.lo)) + half  # Python's round is half to even, as rint
        return FakeQuantSTE.apply(x, s, zp, -half, half - 1)


class QConv2d(nn.Conv2d):
    def __init__(self, *a, wbits=4, **k):
        super().__init__(*a, **k)
        self.wbits = wbits

    def forward(self, x):
        return F.conv2d(x, fq_weight(self.weight, self.wbits), self.bias, self.stride,
                        self.padding, self.dilation, self.groups)


class QLinear(nn.Linear):
    def __init__(self, *a, wbits=4, **k):
        super().__init__(*a, **k)
        self.wbits = wbits

    def forward(self, x):
        return F.linear(x, fq_weight(self.weight, self.wbits), self.bias)


# --------------------------------------------------------------------------
# CIFAR ResNet-20, option A (pad) shortcut; FP teacher or W/A fake-quant student
# --------------------------------------------------------------------------
class PadShortcut(nn.Module):
    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


def _act(abits):
    return nn.Identity() if abits is None else ActQuant(abits)


def _conv(wbits):
    return nn.Conv2d if wbits is None else (lambda *a, **k: QConv2d(*a, wbits=wbits, **k))


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride, wbits, abits):
        super().__init__()
        Conv = _conv(wbits)
        self.conv1 = Conv(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = Conv(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = PadShortcut(planes) if stride != 1 or cin != planes else nn.Identity()
        self.q1, self.q2 = _act(abits), _act(abits)

    def forward(self, x, feats):
        f = self.bn2(self.conv2(self.q1(F.relu(self.bn1(self.conv1(x))))))
        feats.append(f)  # body output F_i, before the add
        return self.q2(F.relu(f + self.shortcut(x)))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR, option-A shortcuts (n = 3: ResNet-20)."""

    def __init__(self, num_classes=10, wbits=None, abits=None, n=3):
        super().__init__()
        self.n = n
        self.conv1 = _conv(wbits)(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.q0 = _act(abits)
        layers, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            layers.append(nn.Sequential(*[BasicBlock(cin if i == 0 else planes, planes,
                                                     stride if i == 0 else 1, wbits, abits)
                                          for i in range(n)]))
            cin = planes
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = (nn.Linear if wbits is None else
                       (lambda *a: QLinear(*a, wbits=wbits)))(64, num_classes)

    def forward(self, x):
        feats = []
        out = self.q0(F.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3):
            for blk in stage:
                out = blk(out, feats)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out), feats


def load_teacher(path, depth=20):
    """Teacher from the state_dict HDF5 file, or random weights when path is None."""
    if path is None:
        m = CifarResNet(n=(depth - 2) // 6)
        with torch.no_grad():  # plausible running statistics
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 1.5)
        return m, "random weights"
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        sd = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float32)) for k in f.keys()}
    if str(attrs.get("shortcut")) != "pad":
        sys.exit(f"{path}: shortcut {attrs.get('shortcut')!r}; this script builds option A only")
    arch = str(attrs.get("arch", "resnet20"))
    m = CifarResNet(int(attrs["num_classes"]), n=(int(arch[len("resnet"):]) - 2) // 6)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if unexpected or not all(k.endswith("num_batches_tracked") for k in missing):
        sys.exit(f"{path}: keys differ: missing {missing}, unexpected {unexpected}")
    return m, path


def quantized_copy(teacher, wbits, abits):
    s = CifarResNet(teacher.linear.out_features, wbits, abits, n=teacher.n)
    s.load_state_dict(teacher.state_dict())
    return s


# --------------------------------------------------------------------------
# GDFQ generator (SPEC 3)
# --------------------------------------------------------------------------
class Generator(nn.Module):
    def __init__(self, num_classes=10, latent=100):
        super().__init__()
        self.emb = nn.Embedding(num_classes, latent)
        self.l1 = nn.Linear(latent, 128 * 8 * 8)
        self.bn0 = nn.BatchNorm2d(128)
        self.conv1 = nn.Conv2d(128, 128, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(128, eps=0.8)
        self.conv2 = nn.Conv2d(128, 64, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(64, eps=0.8)
        self.conv3 = nn.Conv2d(64, 3, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(3, affine=False)

    def forward(self, z, y):
        h = self.l1(self.emb(y) * z).view(z.shape[0], 128, 8, 8)
        h = F.interpolate(self.bn0(h), scale_factor=2)
        h = F.leaky_relu(self.bn1(self.conv1(h)), 0.2)
        h = F.interpolate(h, scale_factor=2)
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
        return self.bn3(torch.tanh(self.conv3(h)))


class BNInputs:
    """Forward hooks on every teacher BN: its input's batch mean / biased variance."""

    def __init__(self, model):
        self.on, self.stats = False, []
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, nn.BatchNorm2d)]

    def remove(self):
        for h in self.handles:
            h.remove()

    def _hook(self, mod, inp, out):
        if self.on:
            x = inp[0]
            self.stats.append((mod, x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)))

    def loss(self):
        l = sum(F.mse_loss(mu, m.running_mean) + F.mse_loss(var, m.running_var)
                for m, mu, var in self.stats)
        return l / len(self.stats)


# --------------------------------------------------------------------------
# losses (SPEC 3, 4)
# --------------------------------------------------------------------------
def entropy(logits):
    return -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1)


def adadfq_gen_terms(zt, zq, y, C, lambda_l=0.1, lambda_u=0.8, alpha_ds=0.2, alpha_as=0.1,
                     beta=1.0):
    zd = zt - zq
    H = entropy(zd)
    hmin = H.min()  # carries gradient, as in the code
    Hn = (H - hmin) / (math.log(C) - hmin)
    h = F.relu(lambda_l - Hn).mean() + F.relu(Hn - lambda_u).mean()
    bal = alpha_ds * F.cross_entropy(zd, y) + alpha_as * F.cross_entropy(zt + zq, y)
    return h + beta * bal


def spatial_map(sq):
    n = sq.mean(1).flatten(1)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def channel_map(sq):
    return F.softmax(sq.mean((2, 3)), 1)


def tempered_kl(a_s, a_t, T):
    return F.kl_div(F.log_softmax(a_s / T, 1), F.softmax(a_t / T, 1), reduction="sum")


def akt_loss(method, zs, zt, y, fs, ft, T=20.0, T_fd=8.0, lam=1000.0, kl_double=False):
    if method == "adadfq":  # entropy form
        logit = -T * T * entropy((zt - zs) / T).mean()
    else:  # kd with the legacy 1/(B*C) 'mean' reduction, + CE
        logit = T * T * F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1),
                                 reduction="mean") + F.cross_entropy(zs, y)
    kl = 0
    for f_s, f_t in zip(fs, ft):
        sq_s = f_s * f_s
        with torch.no_grad():
            sq_t = f_t * f_t
            sp_t, ch_t = spatial_map(sq_t), channel_map(sq_t)
        sp_s, ch_s = spatial_map(sq_s), channel_map(sq_s)
        if kl_double:
            sp_s, ch_s, sp_t, ch_t = sp_s.double(), ch_s.double(), sp_t.double(), ch_t.double()
        kl = kl + tempered_kl(sp_s, sp_t, T_fd) + tempered_kl(ch_s, ch_t, T_fd)
    return logit + lam * kl.float()


# --------------------------------------------------------------------------
# one iteration
# --------------------------------------------------------------------------
class Iteration:
    def __init__(self, method, teacher, B, wbits, abits, kl_double):
        self.method, self.B, self.kl_double = method, B, kl_double
        self.C = teacher.linear.out_features
        self.teacher = teacher
        self.hooks = BNInputs(teacher)
        self.gen = Generator(self.C).train()
        self.student = quantized_copy(teacher, wbits, abits).eval()  # BN running stats
        self.s_params = list(self.student.parameters())
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
        self.opt_s = torch.optim.SGD(self.s_params, lr=1e-4, momentum=0.9, nesterov=True,
                                     weight_decay=1e-4)
        self.t_gen = self.t_stu = 0.0  # seconds of the last call's two steps

    def __call__(self):
        B, C = self.B, self.C
        t0 = time.perf_counter()
        # 1. generator step
        z = torch.randn(B, 100)
        y = torch.randint(0, C, (B,))
        x = self.gen(z, y)
        self.hooks.stats.clear()
        self.hooks.on = True
        zt, ft = self.teacher(x)
        self.hooks.on = False
        bns = self.hooks.loss()
        if self.method == "adadfq":
            for p in self.s_params:  # its own gradients are discarded: do not compute them
                p.requires_grad_(False)
            zq, _ = self.student(x)
            for p in self.s_params:
                p.requires_grad_(True)
            loss_g = adadfq_gen_terms(zt, zq, y, C) + 1.0 * bns
        else:
            loss_g = F.cross_entropy(zt, y) + 0.1 * bns
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        t1 = time.perf_counter()
        # 2. student step on x.detach(), teacher outputs of the same batch detached
        zt, ft = zt.detach(), [f.detach() for f in ft]
        zs, fs = self.student(x.detach())
        loss_q = akt_loss(self.method, zs, zt, y, fs, ft, kl_double=self.kl_double)
        self.opt_s.zero_grad(set_to_none=True)
        loss_q.backward()
        self.opt_s.step()
        t2 = time.perf_counter()
        self.t_gen, self.t_stu = t1 - t0, t2 - t1
        if not (math.isfinite(loss_g.item()) and math.isfinite(loss_q.item())):
            sys.exit(f"{self.method}: non-finite loss (L_G {loss_g.item()}, L_Q {loss_q.item()})")


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
_CLK = os.sysconf("SC_CLK_TCK")


def _user_seconds():
    """(user CPU seconds of the whole machine, of this process)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[1]) + int(v[2])) / _CLK, os.times().user


def _foreign_since(u0):
    u1 = _user_seconds()
    return (u1[0] - u0[0]) - (u1[1] - u0[1])


def wait_quiet(max_s, need_s=3):
    """Wait (up to max_s) until other processes used < 0.1 s of user CPU in
    each of need_s consecutive 1-second windows."""
    t_end = time.time() + max_s
    quiet = 0
    while quiet < need_s and time.time() < t_end:
        u0 = _user_seconds()
        time.sleep(1.0)
        quiet = quiet + 1 if _foreign_since(u0) < 0.1 else 0


def measure(name, fn, batch, reps, warmup, threads, max_wait, max_tries_factor=5):
    """Median of `reps` clean timed calls after `warmup` untimed ones, as
    torch_baseline.py's measure() (and akt bench-zsq) do: a call during which
    other processes used more than max(0.03 s, 5% of our threads' time) of
    user CPU is rejected; we then wait (up to max_wait s) for a quiet machine,
    run one untimed call and go on, until `reps` clean calls or
    max_tries_factor*reps tries. Too few clean calls: the least contended
    rejected ones fill up and the line is flagged CONTENDED on stderr."""
    for _ in range(warmup):
        fn()
    clean, dirty = [], []
    tries = 0
    w0 = time.perf_counter()
    while len(clean) < reps and tries < max_tries_factor * reps:
        tries += 1
        u0 = _user_seconds()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        foreign = _foreign_since(u0)
        if foreign <= max(0.03, 0.05 * threads * dt):
            clean.append((dt, fn.t_gen, fn.t_stu))
        else:
            dirty.append((foreign, (dt, fn.t_gen, fn.t_stu)))
            wait_quiet(max_wait)
            fn()  # re-warm after the pause, untimed
    flag = ""
    rows = list(clean)
    if len(rows) < reps:
        flag = "  CONTENDED"
        rows += [r for _, r in sorted(dirty, key=lambda d: d[0])[: reps - len(rows)]]
    ts = [r[0] for r in rows]
    med = statistics.median(ts)
    print(f"{name} {med * 1e3:.2f} {batch / med:.1f}", flush=True)
    print(f"#   {name}: min {min(ts) * 1e3:.2f} median {med * 1e3:.2f} max {max(ts) * 1e3:.2f} ms "
          f"over {len(ts)} reps (warm-up {warmup}); generator step "
          f"{statistics.median(r[1] for r in rows) * 1e3:.2f} ms, student step "
          f"{statistics.median(r[2] for r in rows) * 1e3:.2f} ms; {len(dirty)} contended calls "
          f"rejected; elapsed {time.perf_counter() - w0:.1f} s{flag}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 200])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-wait", type=float, default=120,
                    help="after a contended call, wait up to this many seconds for quiet")
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=4)
    ap.add_argument("--generators", nargs="+", default=["gdfq", "adadfq"],
                    choices=["gdfq", "adadfq"])
    ap.add_argument("--teacher", default=None,
                    help="teacher HDF5 (default $AKT_DATA/" + DEFAULT_TEACHER + ", else "
                         "../shared/data/...; 'random' for random weights)")
    ap.add_argument("--depth", type=int, default=20,
                    help="ResNet depth 6n+2: picks the default teacher, and names the "
                         "measurements _rD unless 20")
    ap.add_argument("--kl-double", action="store_true", help="feature KL in float64, as akt")
    ap.add_argument("--malloc", choices=["tuned", "default", "both"], default="tuned")
    ap.add_argument("--suffix", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.suffix is None:
        # glibc reads GLIBC_TUNABLES at process start: measure in child processes
        rest = [a for a in sys.argv[1:]]
        if "--malloc" in rest:
            i = rest.index("--malloc")
            del rest[i:i + 2]
        rest = [a for a in rest if not a.startswith("--malloc=")]
        modes = ["default", "tuned"] if args.malloc == "both" else [args.malloc]
        for mode in modes:
            env = dict(os.environ)
            if mode == "tuned":
                env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
            sys.stdout.flush()
            rc = subprocess.call([sys.executable, os.path.abspath(__file__)] + rest +
                                 ["--suffix", "" if mode == "tuned" else "_defmalloc"], env=env)
            if rc:
                sys.exit(rc)
        return

    # the legacy 'mean' reduction of kl_div is what the SPEC asks for
    warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = args.teacher
    if path is None:
        root = os.environ.get("AKT_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
        path = os.path.join(root, DEFAULT_TEACHER.format(depth=args.depth))
    teacher, what = load_teacher(None if path == "random" else path, args.depth)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}, teacher {what}, "
          f"W{args.wbits}A{args.abits}, feature KL in {'float64' if args.kl_double else 'float32'}",
          file=sys.stderr, flush=True)
    for B in args.batches:
        for method in args.generators:
            fn = Iteration(method, teacher, B, args.wbits, args.abits, args.kl_double)
            depth = "" if teacher.n == 3 else f"_r{6 * teacher.n + 2}"
            measure(f"zsq_{method}_akt{depth}_b{B}{args.suffix}", fn, B, args.reps, args.warmup,
                    args.threads, args.max_wait)
            fn.hooks.remove()
            del fn


if __name__ == "__main__":
    main()
