#!/usr/bin/python3
"""Summarise akt results files: a paper-style table and PNG plots.

    /usr/bin/python3 tools/akt_report.py FILE.h5 [FILE.h5...] [--out DIR] [--markdown]

stdout: the table (rows = architecture, then generator+loss, columns = WxAy;
cell = best top-1 / final top-1, each as mean +- sample std over the runs that
differ only by seed, with their count n; a cell with fewer than 3 seeds is
marked *, its std is "-" for a single run), one line per run, and the runs
whose status is not "done". Always written: DIR/report.md
(the same in Markdown), DIR/top1.png, DIR/losses.png, DIR/images.png.
DIR defaults to NAME_report/ next to the first file. Schema: results/README.md.
Images: each min-max scaled by default; --scale meanstd (--mean/--std, default
ImageNet's) or --scale teacher (the run's teacher file) undo the normalisation.
Needs h5py and numpy; matplotlib (Agg) for the plots (--no-plots skips them).
"""
import argparse
import math
import os
import re
import sys

# akt replaces results files atomically, so opening one akt is writing is safe;
# without HDF5's file lock a reader never waits for (or blocks) a writer.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"akt_report: error: {e} (run with /usr/bin/python3; Debian: python3-h5py python3-numpy)")

SCHEMA_VERSION = 2
# ImageNet statistics, the normalisation of the shared CIFAR-10 teacher; used
# only with --scale meanstd (the results file does not store the teacher's).
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Config keys that never split a table row: seeds are what a cell averages.
# The teacher file is represented by its architecture, which leads each row.
NOT_A_ROW_KEY = {"id", "seed", "threads", "generator", "loss", "wbits", "abits", "teacher"}


def parse_config(text):
    """The run's @config: flat `key: value` lines (strings may be double-quoted)."""
    cfg = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        cfg[key.strip()] = value
    return cfg


def as_str(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def read_metric(group, name):
    """(steps, values) of metrics/<name>; the shorter dataset is authoritative."""
    g = group[name]
    step, value = g["step"][:], g["value"][:]
    n = min(len(step), len(value))
    return step[:n].astype(np.int64), value[:n]


class Run:
    def __init__(self, path, run_id, grp):
        self.path, self.id = path, run_id
        self.status = as_str(grp.attrs.get("status", "?"))
        self.message = as_str(grp.attrs.get("status_message", ""))
        self.created = as_str(grp.attrs.get("created", ""))
        self.config = parse_config(as_str(grp.attrs.get("config", "")))
        self.attrs = {k: float(grp.attrs[k]) for k in
                      ("best_top1", "final_top1", "top1_fp", "top1_before", "checkpoint_epoch",
                       "depth")
                      if k in grp.attrs}
        self.metrics = {}
        if "metrics" in grp:
            for name in grp["metrics"]:
                try:
                    self.metrics[name] = read_metric(grp["metrics"], name)
                except KeyError:  # a group without step/value: not a metric
                    pass
        self.images = self.labels = None
        if "tensors" in grp and "images" in grp["tensors"]:
            self.images = grp["tensors/images"][:]
            if "labels" in grp["tensors"]:
                self.labels = grp["tensors/labels"][:]
        self.label = run_id  # unique display name, set by load()

    def arch(self):
        """resnet<depth>: the run's attribute, else the teacher's file name."""
        if "depth" in self.attrs:
            return f"resnet{int(self.attrs['depth'])}"
        m = re.search(r"resnet(\d+)", os.path.basename(self.config.get("teacher", "")))
        return f"resnet{m.group(1)}" if m else "resnet?"

    def depth(self):
        m = re.match(r"resnet(\d+)$", self.arch())
        return int(m.group(1)) if m else 10**9

    def cfg_int(self, key, default=None):
        try:
            return int(self.config[key])
        except (KeyError, ValueError):
            return default

    def epochs_done(self):
        if "checkpoint_epoch" in self.attrs:
            return int(self.attrs["checkpoint_epoch"])
        if "top1" in self.metrics:
            return len(np.unique(self.metrics["top1"][0]))
        return 0


def read_file(path):
    """The runs of one results file (a run file of OUT.h5.d/ too)."""
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise SystemExit(f"akt_report: error: {path}: cannot open as HDF5: {e}")
    with f:
        if "akt_schema_version" not in f.attrs:
            raise SystemExit(f"akt_report: error: {path}: not an akt results file "
                             "(no akt_schema_version)")
        version = int(np.asarray(f.attrs["akt_schema_version"]).ravel()[0])
        if version > SCHEMA_VERSION:
            raise SystemExit(f"akt_report: error: {path}: schema version {version} is newer "
                             f"than this tool's {SCHEMA_VERSION}")
        if "runs" not in f:
            raise SystemExit(f"akt_report: error: {path}: no runs/ group")
        return [Run(path, rid, grp) for rid, grp in f["runs"].items()]


def load(paths):
    runs = []
    for i, path in enumerate(paths):
        file_runs = {r.id: r for r in read_file(path)}
        # runs in progress (or killed) live in PATH.d/<id>.h5, newer than
        # any copy in PATH (results/README.md, "Crash safety")
        side = path + ".d"
        if os.path.isdir(side):
            for name in sorted(os.listdir(side)):
                if name.endswith(".h5"):
                    for r in read_file(os.path.join(side, name)):
                        r.path = path
                        file_runs[r.id] = r
        file_runs = list(file_runs.values())
        file_runs.sort(key=lambda r: (r.created, r.id))  # creation order, not h5py's alphabetical
        runs.extend((i, r) for r in file_runs)
    # The same id with the same config in several files (shards, merged copies)
    # counts once: a done copy wins, else the one with more epochs.
    best = {}
    for i, r in runs:
        key = (r.id, tuple(sorted(r.config.items())))
        old = best.get(key)
        if old is None or ((r.status == "done", r.epochs_done()) >
                           (old[1].status == "done", old[1].epochs_done())):
            best[key] = (old[0] if old else i, r)
    kept = sorted(best.values(), key=lambda t: (t[0], t[1].created, t[1].id))
    kept = [r for _, r in kept]
    ids = [r.id for r in kept]
    for r in kept:
        if ids.count(r.id) > 1:  # one id, different configs, in different files
            r.label = f"{os.path.splitext(os.path.basename(r.path))[0]}:{r.id}"
    return kept


def bits_name(r):
    return f"W{r.config.get('wbits', '?')}A{r.config.get('abits', '?')}"


def build_table(runs):
    """rows [(label, {col: [run]})], cols [name] for the runs with status done."""
    done = [r for r in runs if r.status == "done" and "best_top1" in r.attrs]
    # A config key splits rows when it differs between runs of one
    # (generator, loss, bits) cell other than by seed: e.g. a loss.lambda axis.
    cells = {}
    for r in done:
        cells.setdefault((r.arch(), r.config.get("generator", "?"), r.config.get("loss", "?"),
                          bits_name(r)), []).append(r)
    split = set()
    for group in cells.values():
        keys = set().union(*(r.config for r in group)) - NOT_A_ROW_KEY
        for k in keys:
            if len({r.config.get(k) for r in group}) > 1:
                split.add(k)
    split = sorted(split)

    def row_label(r):
        label = f"{r.arch()} {r.config.get('generator', '?')}+{r.config.get('loss', '?')}"
        extra = [f"{k}={r.config[k]}" for k in split if k in r.config]
        return label + (f" ({', '.join(extra)})" if extra else "")

    rows, cols = {}, {}
    # rows grouped by architecture (shallow first), methods in file order
    for r in sorted(done, key=lambda r: r.depth()):
        w, a = r.cfg_int("wbits", 99), r.cfg_int("abits", 99)
        cols[bits_name(r)] = (w, a)
        rows.setdefault(row_label(r), {}).setdefault(bits_name(r), []).append(r)
    col_names = sorted(cols, key=lambda c: (cols[c], c))
    return list(rows.items()), col_names


def mean_std(values):
    n = len(values)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s


# Seeds a cell needs before its std says something: fewer are marked.
MIN_SEEDS = 3


def cell_text(group):
    """best and final top-1 as mean ± sample std over the cell's runs, (n=N),
    and * when the runs cover fewer than MIN_SEEDS distinct seeds"""
    if not group:
        return "-"
    n = len(group)

    def ms(key):
        m, s = mean_std([r.attrs[key] for r in group])
        return f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f} ± -"

    seeds = len({r.config.get("seed", "?") for r in group})
    mark = " *" if seeds < MIN_SEEDS else ""
    return f"{ms('best_top1')} / {ms('final_top1')} (n={n}){mark}"


def fp_line(runs):
    fp = sorted({round(r.attrs["top1_fp"], 2) for r in runs if "top1_fp" in r.attrs})
    if not fp:
        return None
    v = f"{fp[0]:.2f}" if len(fp) == 1 else f"{fp[0]:.2f} to {fp[-1]:.2f}"
    return f"FP teacher top-1: {v} %"


def fmt(x, key):
    return f"{x.attrs[key]:.2f}" if key in x.attrs else "-"


def run_rows(runs):
    """One row per run: id, status, bits, seed, epochs done/planned, before, best, final."""
    out = []
    for r in runs:
        planned = r.config.get("epochs", "?")
        out.append([r.label, r.status, r.arch(), bits_name(r), r.config.get("seed", "-"),
                    f"{r.epochs_done()}/{planned}", fmt(r, "top1_before"),
                    fmt(r, "best_top1"), fmt(r, "final_top1")])
    return out


RUN_HEADER = ["run", "status", "arch", "bits", "seed", "epochs", "before", "best", "final"]


def text_grid(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def md_grid(header, rows):
    esc = lambda c: str(c).replace("|", "\\|")
    out = ["| " + " | ".join(esc(h) for h in header) + " |",
           "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def render(runs, paths, markdown):
    rows, cols = build_table(runs)
    header = ["method"] + cols
    table = [[label] + [cell_text(by_col.get(c, [])) for c in cols] for label, by_col in rows]
    not_done = [r for r in runs if r.status != "done"]
    grid = md_grid if markdown else text_grid
    out = []
    if markdown:
        out += ["# akt report", "", "Files: " + ", ".join(f"`{p}`" for p in paths), ""]
    else:
        out += ["akt report: " + ", ".join(paths), ""]
    note = ("cell: best top-1 / final top-1 (%), each mean ± sample std over the n seeds "
            f"of the cell; * fewer than {MIN_SEEDS} seeds (± -: one run, no std)")
    if table:
        out += grid(header, table)
        out += ["", note]
    else:
        out += ["(no finished runs)"]
    fp = fp_line(runs)
    if fp:
        out.append(fp)
    out += ["", "## Runs", ""] if markdown else ["", "Runs:"]
    out += grid(RUN_HEADER, run_rows(runs))
    if not_done:
        out += ["", "## Not done", ""] if markdown else ["", "Not done:"]
        nd = [[r.label, r.status, f"{r.epochs_done()}/{r.config.get('epochs', '?')}",
               r.message or "-"] for r in not_done]
        out += grid(["run", "status", "epochs done", "message"], nd)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- plots

# Runs often share curves (same seed, same generator): a marker per run keeps them apart.
MARKERS = ("o", "s", "^", "v", "D", "x", "+", "<", ">", "p", "*", "h")


def loss_metric_names(runs):
    names = set()
    for r in runs:
        names.update(n for n in r.metrics
                     if n in ("loss_g", "loss_q") or n.startswith(("gen.", "loss.")))
    fixed = [n for n in ("loss_g", "loss_q") if n in names]
    return fixed + sorted(names - set(fixed))


def legend_right(fig, ax_or_handles, labels=None):
    n = len(labels) if labels is not None else len(ax_or_handles.get_legend_handles_labels()[1])
    ncol = 1 if n <= 20 else 2
    size = 8 if n <= 12 else 7
    if labels is None:
        ax_or_handles.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=size,
                             ncol=ncol, frameon=False)
    else:
        fig.legend(ax_or_handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.98),
                   fontsize=size, ncol=ncol, frameon=False)


def plot_top1(plt, runs, path):
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab20" if len(runs) > 10 else "tab10")
    for i, r in enumerate(runs):
        if "top1" not in r.metrics:
            continue
        step, value = r.metrics["top1"]
        ax.plot(step, value.reshape(len(value), -1)[:, 0],
                marker=MARKERS[i % len(MARKERS)] if len(step) < 30 else None,
                markersize=5, markerfacecolor="none", color=cmap(i % cmap.N), label=r.label,
                linestyle="-" if r.status == "done" else "--")
    ax.set_xlabel("epoch (0-based, as stored)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("student top-1 per epoch (dashed: not done)")
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ax.lines:
        legend_right(fig, ax)
    else:
        ax.text(0.5, 0.5, "no top1 metric", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_losses(plt, runs, path):
    names = loss_metric_names(runs)
    n = max(len(names), 1)
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab20" if len(runs) > 10 else "tab10")
    handles = {}
    for k, name in enumerate(names):
        ax = axes[k // ncols][k % ncols]
        positive = True
        for i, r in enumerate(runs):
            if name not in r.metrics:
                continue
            step, value = r.metrics[name]
            v = value.reshape(len(value), -1)[:, 0]
            positive = positive and bool(np.all(v > 0))
            (line,) = ax.plot(step, v, color=cmap(i % cmap.N), linewidth=1.2,
                              marker=MARKERS[i % len(MARKERS)] if len(step) < 30 else None,
                              markersize=4, markerfacecolor="none",
                              linestyle="-" if r.status == "done" else "--")
            handles.setdefault(r.label, line)
        if positive and ax.lines:
            lo = min(np.min(l.get_ydata()) for l in ax.lines)
            hi = max(np.max(l.get_ydata()) for l in ax.lines)
            if hi > 50 * lo:
                ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch (0-based)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for k in range(len(names), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    if not names:
        axes[0][0].text(0.5, 0.5, "no loss metrics", ha="center")
    fig.suptitle("loss components per epoch (epoch means)")
    fig.tight_layout()
    if handles:
        legend_right(fig, list(handles.values()), list(handles))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def to_rgb(img, scale, mean, std):
    """[3, H, W] normalised -> [H, W, 3] in [0, 1]."""
    img = img.astype(np.float64)
    if scale == "meanstd":
        img = img * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    else:  # min-max over the whole image (all channels), so hues survive
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.clip(img, 0.0, 1.0).transpose(1, 2, 0)


def class_names(r):
    """CIFAR-10's class names for a CIFAR-10 run, else None (labels shown as numbers)."""
    fmt_ = r.config.get("format", "auto").lower()
    data = os.path.basename(os.path.dirname(r.config.get("data", ""))).lower()
    if fmt_ == "cifar10" or (fmt_ == "auto" and "100" not in data):
        return CIFAR10_CLASSES
    return None


_TEACHER_STATS = {}  # teacher path -> (mean, std) or None


def teacher_stats(r):
    """(input_mean, input_std) of the run's teacher file (@config `teacher`), or None."""
    path, cache = r.config.get("teacher", ""), _TEACHER_STATS
    if path not in cache:
        cache[path] = None
        try:
            with h5py.File(path, "r") as t:
                m = tuple(float(x) for x in np.ravel(t.attrs["input_mean"]))
                s = tuple(float(x) for x in np.ravel(t.attrs["input_std"]))
            if len(m) == 3 and len(s) == 3:
                cache[path] = (m, s)
        except (OSError, KeyError, ValueError):
            pass
        if cache[path] is None:
            print(f"akt_report: warning: run {r.id}: cannot read input_mean/input_std of its "
                  f"teacher '{path}'; its images are min-max scaled", file=sys.stderr)
    return cache[path]


def plot_images(plt, runs, path, scale, mean, std, per_run=16):
    with_images = [r for r in runs if r.images is not None and len(r.images)]
    cols = min(per_run, max([len(r.images) for r in with_images] or [1]))
    nrows = max(len(with_images), 1)
    fig, axes = plt.subplots(nrows, cols, figsize=(0.95 * cols + 1.2, 1.15 * nrows + 0.6),
                             squeeze=False)
    for i, r in enumerate(with_images):
        names = class_names(r)
        how_r, mean_r, std_r = scale, mean, std
        if scale == "teacher":
            stats = teacher_stats(r)
            how_r, (mean_r, std_r) = ("meanstd", stats) if stats else ("minmax", (mean, std))
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(r.images):
                ax.axis("off")
                continue
            ax.imshow(to_rgb(r.images[j], how_r, mean_r, std_r), interpolation="nearest")
            if r.labels is not None and j < len(r.labels):
                lab = int(r.labels[j])
                title = f"{lab} {names[lab]}" if names and 0 <= lab < len(names) else str(lab)
                ax.set_title(title, fontsize=6, pad=2)
            for s in ax.spines.values():
                s.set_visible(False)
        axes[i][0].set_ylabel(r.label, rotation=0, ha="right", va="center", fontsize=7)
    if not with_images:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "no tensors/images (no finished run)", ha="center")
    how = {"meanstd": "un-normalised with mean " + ", ".join(f"{m:g}" for m in mean)
                      + " and std " + ", ".join(f"{s:g}" for s in std),
           "teacher": "un-normalised with each teacher's input_mean / input_std",
           "minmax": "each image min-max scaled"}[scale]
    fig.suptitle(f"generated images of the final generator ({how})", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, top=1 - 0.45 / (1.15 * nrows + 0.6),
                        bottom=0.01, wspace=0.08, hspace=0.35)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def three_floats(text):
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        v = ()
    if len(v) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got '{text}'")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="akt_report.py",
        description="Paper-style table and plots from akt results files (results/README.md).")
    p.add_argument("files", nargs="+", metavar="FILE.h5")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: NAME_report/ next to the first file)")
    p.add_argument("--markdown", action="store_true", help="print Markdown instead of text")
    p.add_argument("--scale", choices=("minmax", "meanstd", "teacher"), default=None,
                   help="images: min-max scale each image (default); meanstd: x*std+mean "
                        "with --mean/--std, clipped; teacher: the same with the input_mean/"
                        "input_std of the teacher file named in each run's config")
    p.add_argument("--mean", type=three_floats, default=None,
                   help="per-channel mean for --scale meanstd (default: ImageNet's "
                        "0.485,0.456,0.406); implies --scale meanstd")
    p.add_argument("--std", type=three_floats, default=None,
                   help="per-channel std (default 0.229,0.224,0.225); implies --scale meanstd")
    p.add_argument("--no-plots", action="store_true", help="only the table and report.md")
    args = p.parse_args(argv)

    for path in args.files:
        if not os.path.isfile(path):
            p.exit(1, f"akt_report: error: {path}: no such file\n")
    scale = args.scale or ("meanstd" if args.mean or args.std else "minmax")
    mean, std = args.mean or DEFAULT_MEAN, args.std or DEFAULT_STD

    runs = load(args.files)
    out_dir = args.out
    if out_dir is None:
        first = os.path.abspath(args.files[0])
        out_dir = os.path.join(os.path.dirname(first),
                               os.path.splitext(os.path.basename(first))[0] + "_report")
    os.makedirs(out_dir, exist_ok=True)

    sys.stdout.write(render(runs, args.files, args.markdown))
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(render(runs, args.files, True))
    written = [os.path.join(out_dir, "report.md")]

    if not args.no_plots:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            p.exit(1, f"akt_report: error: {e} (Debian: apt-get install python3-matplotlib; "
                      "or --no-plots)\n")
        for name, fn, extra in (("top1.png", plot_top1, ()),
                                ("losses.png", plot_losses, ()),
                                ("images.png", plot_images, (scale, mean, std))):
            path = os.path.join(out_dir, name)
            fn(plt, runs, path, *extra)
            written.append(path)
    print("wrote " + " ".join(written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
