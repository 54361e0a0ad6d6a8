# Reads an akt results file: python3 tools/results_example.py results.h5
import sys

import h5py

try:
    import pandas as pd
except ImportError:  # pandas is optional: plain Python below
    pd = None

path = sys.argv[1]
top1 = {}  # run id -> {epoch: top-1 %}
with h5py.File(path, "r") as f:
    print("schema", int(f.attrs["akt_schema_version"]), "written by", f.attrs["creator"],
          "at", f.attrs["created"])
    for run_id, run in f["runs"].items():
        print(f"run {run_id}: {run.attrs['status']} {run.attrs['status_message']}")
        config = run.attrs["config"]  # the expanded configuration, YAML text (str)
        print("  config:", " | ".join(config.splitlines()[:3]))
        metrics = run["metrics"]
        print("  metrics:", ", ".join(metrics))
        if "top1" in metrics:
            epochs = metrics["top1/step"][:]
            values = metrics["top1/value"][:]
            top1[run_id] = dict(zip(epochs.tolist(), values.tolist()))
        if "act_range" in metrics:
            last = metrics["act_range/value"][-1]  # last epoch: all lo, then all hi
            n = last.shape[0] // 2
            print("  act_range of the first ReLU:", last[0], "to", last[n])

if pd is not None:
    df = pd.DataFrame(top1)  # index: epoch, one column per run
    df.index.name = "epoch"
    print(df)
else:
    for run_id, series in top1.items():
        print("top1 of", run_id)
        for epoch, v in series.items():
            print(f"  {epoch:4d} {v:8.3f}")
