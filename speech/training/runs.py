"""Training run folders: per-epoch metrics, the best checkpoint, and the learning-curve plot.

A run folder is what ``speech train`` writes: ``<default_root_dir>/<run_name>/version_<N>/`` with
``metrics.csv`` (Lightning's CSV logger) and ``checkpoints/best-epochEE-accA.AAAA.ckpt`` / ``last.ckpt``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from speech.errors import SpeechError
from speech.utils.plots import new_figure

CURVE_FILE = "learning_curve.png"
_BEST = re.compile(r"best-epoch(\d+)-acc([0-9.]+)\.ckpt$")


class RunFolderError(SpeechError, ValueError):
    """A folder that is not a training run (no metrics.csv), or an output that would replace a file."""


def epoch_metrics(run_dir: str | Path) -> dict[str, dict[int, float]]:
    """``{"val/acc": {epoch: value}, "train/loss_epoch": {epoch: value}}`` from a run folder's ``metrics.csv``."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise RunFolderError(f"{run_dir}: not a training run folder (no metrics.csv; expected runs/<name>/version_<N>)")
    out: dict[str, dict[int, float]] = {"val/acc": {}, "train/loss_epoch": {}}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, values in out.items():
                if row.get(key) and row.get("epoch"):
                    values[int(row["epoch"])] = float(row[key])
    return out


@dataclass
class BestCheckpoint:
    path: Path
    epoch: int
    accuracy: float  # validation accuracy in [0, 1]


def best_checkpoint(run_dir: str | Path) -> BestCheckpoint | None:
    """The ``best-*.ckpt`` of a run folder with its epoch and validation accuracy (from its name), or None."""
    found = []
    for path in sorted((Path(run_dir) / "checkpoints").glob("best-*.ckpt")):
        match = _BEST.search(path.name)
        if match:
            found.append(BestCheckpoint(path, int(match.group(1)), float(match.group(2))))
    return max(found, key=lambda b: (b.accuracy, -b.epoch), default=None)


def run_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a file; for a run folder (``runs/NAME`` or ``runs/NAME/version_N``) its best
    checkpoint. A folder of several versions that each hold one is refused (which one was meant is not known), as is
    a missing path or a folder without one: the message names the folder and what was expected."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such checkpoint or training run folder (expected a .ckpt file or a folder "
                             "runs/<name> that speech train wrote)")
    best = best_checkpoint(path)
    if best is not None:
        return best.path
    found = {v: b for v in path.glob("version_*") if (b := best_checkpoint(v)) is not None}
    if len(found) == 1:
        return next(iter(found.values())).path
    if found:
        versions = sorted(found, key=lambda v: (len(v.name), v.name))  # version_2 before version_10
        names = ", ".join(v.name for v in versions)
        raise RunFolderError(f"{path}: {len(versions)} runs hold a best checkpoint ({names}); name one of them "
                             f"(e.g. {versions[-1]})")
    raise RunFolderError(f"{path}: no best-*.ckpt in this folder or its version_* folders (has its training run "
                         "finished an epoch?)")


CURVE_FORMATS = (".png", ".svg", ".pdf")


def check_curve_output(out: str | Path, overwrite: bool = False) -> Path:
    """``out`` must be a new (or, with ``overwrite``, replaceable) PNG/SVG/PDF file in a writable place."""
    from speech.utils.files import check_new_file

    out = Path(out)
    if out.suffix.lower() not in CURVE_FORMATS and not out.is_dir():
        raise RunFolderError(f"{out}: the learning curve is written as {', '.join(CURVE_FORMATS)}; give a file name "
                             "ending in one of them", param="out")
    return check_new_file(out, "learning curve", overwrite=overwrite, param="out", example=CURVE_FILE)


def free_curve_name(run_dir: str | Path) -> Path:
    """``RUN/learning_curve.png``, or the first ``learning_curve-N.png`` that does not exist yet (never replaces
    the one ``speech train`` wrote)."""
    run_dir = Path(run_dir)
    stem, suffix = Path(CURVE_FILE).stem, Path(CURVE_FILE).suffix
    candidate, n = run_dir / CURVE_FILE, 1
    while candidate.exists():
        candidate, n = run_dir / f"{stem}-{n}{suffix}", n + 1
    return candidate


def plot_learning_curve(
    runs: list[str | Path], out: str | Path, labels: list[str] | None = None, overwrite: bool = False
) -> Path:
    """Validation accuracy (%) and training loss per epoch of one or more runs, side by side; PNG at ``out``.

    Refuses to replace an existing ``out`` (:class:`FileExistsError`) unless ``overwrite``. Returns ``out``.
    """
    out = check_curve_output(out, overwrite)
    labels = list(labels) if labels else [str(r) for r in runs]
    if len(labels) != len(runs):
        raise RunFolderError(f"{len(labels)} labels for {len(runs)} runs; give one label per run")
    metrics = [epoch_metrics(run) for run in runs]
    fig = new_figure(10, 3.8)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for values, label in zip(metrics, labels, strict=True):
        acc = values["val/acc"]
        if acc:
            best = f" (best {100 * max(acc.values()):.1f}%)"
            acc_ax.plot(list(acc), [100 * v for v in acc.values()], marker="." if len(acc) < 20 else None,
                        label=label + best)  # fmt: skip
        loss = values["train/loss_epoch"]
        if loss:
            loss_ax.plot(list(loss), list(loss.values()), marker="." if len(loss) < 20 else None, label=label)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation (held-out) accuracy")
    loss_ax.set(xlabel="epoch", ylabel="training loss (label-smoothed CE)", title="training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
