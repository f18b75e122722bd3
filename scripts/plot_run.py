#!/usr/bin/env python
"""Plot a training run's learning curve (validation accuracy and training loss per epoch) from its metrics.csv.

  python scripts/plot_run.py runs/cpu-small/version_0 --out curve.png [--label NAME] [more runs ...]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def epoch_metrics(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{"val/acc": {epoch: value}, "train/loss_epoch": {...}}`` from a run folder's metrics.csv."""
    out: dict[str, dict[int, float]] = {"val/acc": {}, "train/loss_epoch": {}}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            for key, values in out.items():
                if row.get(key):
                    values[int(row["epoch"])] = float(row[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with metrics.csv)")
    parser.add_argument("--label", action="append", help="legend name per run (default: folder path)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; refusing to overwrite it")
    labels = args.label or [str(r) for r in args.runs]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for run, label in zip(args.runs, labels, strict=True):
        metrics = epoch_metrics(run)
        acc = metrics["val/acc"]
        acc_ax.plot(list(acc), [100 * v for v in acc.values()], label=f"{label} (best {100 * max(acc.values()):.1f}%)")
        loss_ax.plot(list(metrics["train/loss_epoch"]), list(metrics["train/loss_epoch"].values()), label=label)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="held-out speakers")
    loss_ax.set(xlabel="epoch", ylabel="training loss (label-smoothed CE)", title="training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
