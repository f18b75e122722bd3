"""Evaluation reports: markdown, JSON, confusion matrices as CSV and PNG, accuracy-vs-SNR table and plot.

Files written by :func:`write_report` into the report folder (``<name>`` is one per model, e.g. ``tiny-ckpt``):

* ``report.md`` -- summary / side-by-side comparison, per-class table, most confused pairs, noise table;
* ``report.json`` -- the same numbers (see :func:`report_json`);
* ``<name>.confusion.csv`` / ``<name>.confusion.png`` -- counts, rows = true class, columns = predicted;
* ``<name>.per_class.csv`` -- precision, recall, F1, support per class;
* ``snr.csv`` / ``snr.png`` -- accuracy vs SNR, when a noise evaluation ran.

Nothing is ever overwritten silently: an existing non-empty folder or JSON file is refused unless
``overwrite`` is given (:class:`~speech.evaluation.OutputExistsError`, whose ``param`` names the parameter).
"""

from __future__ import annotations

import csv
import json
import string
import time
from pathlib import Path

import numpy as np

from speech.errors import OutputExistsError
from speech.evaluation.metrics import Metrics
from speech.evaluation.model_eval import ModelEvaluation
from speech.evaluation.scoring import Result
from speech.utils.files import check_can_create, check_json_path, write_json
from speech.utils.plots import new_figure

REPORT_FORMAT = "speech-eval-report"
REPORT_VERSION = 1
MAX_MARKDOWN_CONFUSION = 15  # classes up to which report.md also shows the confusion matrix as a table


def clip_sets(evals: list[ModelEvaluation]) -> dict[str, str]:
    """``{model name: "A" | "B" | ...}``: one letter per distinct clip set, in order of first appearance."""
    letters: dict[str, str] = {}
    out = {}
    for ev in evals:
        key = ev.data.get("clip_set") or json.dumps(ev.data, sort_keys=True)
        if key not in letters:
            n = len(letters)
            letters[key] = string.ascii_uppercase[n] if n < 26 else f"S{n + 1}"
        out[ev.name] = letters[key]
    return out


def comparability_note(evals: list[ModelEvaluation]) -> str | None:
    """A warning when the models were scored on different clip sets (None when there is one set)."""
    sets = clip_sets(evals)
    if len(set(sets.values())) <= 1:
        return None
    groups: dict[str, list[str]] = {}
    for ev in evals:
        groups.setdefault(sets[ev.name], []).append(ev)
    described = "; ".join(
        f"{letter}: {', '.join(ev.name for ev in members)} ({members[0].data.get('clips')} clips of the "
        f"{members[0].data.get('split')} split of {members[0].data.get('root')})"
        for letter, members in groups.items()
    )
    return (
        f"NOT COMPARABLE: these models were scored on {len(groups)} different clip sets ({described}); "
        "accuracies from different sets do not rank the models"
    )


# ------------------------------------------------------------------------------------------------ JSON


def _snr_rows(result: Result) -> list[dict]:
    return [
        {"snr_db": r.snr_db, "accuracy": r.accuracy, "macro_f1": r.macro_f1, "clips": r.metrics.num_clips}
        for r in result.noisy
    ]


def model_entry(ev: ModelEvaluation) -> dict:
    """Everything about one model as plain data; ``accuracy``/``macro_f1`` in [0, 1]."""
    r = ev.result
    entry = {
        "name": ev.name,
        "path": ev.path,
        "backend": ev.backend,
        "num_parameters": ev.num_parameters,
        "labels": list(r.metrics.labels),
        "data": ev.data,
        **r.metrics.to_dict(),
        "seconds": r.seconds,
        "latency": r.latency.to_dict() if r.latency else None,
        "snr": _snr_rows(r),
    }
    return entry


def comparison_rows(evals: list[ModelEvaluation]) -> list[dict]:
    """The side-by-side table: one row per model."""
    rows = []
    sets = clip_sets(evals)
    for ev in evals:
        lat = ev.result.latency
        rows.append(
            {
                "name": ev.name,
                "clip_set": sets[ev.name],
                "backend": ev.backend,
                "accuracy": ev.result.accuracy,
                "macro_f1": ev.result.macro_f1,
                "num_parameters": ev.num_parameters,
                "latency_ms": lat.median_ms if lat else None,
                "batch_ms_per_clip": lat.batch_ms_per_clip if lat else None,
                "threads": lat.threads if lat else None,
                "clips": ev.result.metrics.num_clips,
                **{f"accuracy_snr_{r.snr_db:g}": r.accuracy for r in ev.result.noisy},
            }
        )
    return rows


def report_json(evals: list[ModelEvaluation]) -> dict:
    """One model: its entry at top level (``accuracy`` etc.). Several: ``models`` (list) + ``comparison``."""
    header = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if len(evals) == 1:
        return {**header, **model_entry(evals[0])}
    note = comparability_note(evals)
    best = max(evals, key=lambda ev: (ev.result.accuracy, ev.result.macro_f1))
    return {
        **header,
        "models": [model_entry(ev) for ev in evals],
        "comparison": comparison_rows(evals),
        "same_clips": note is None,
        "comparability_note": note,
        "best": None if note else best.name,  # no ranking across different clip sets
    }


# ------------------------------------------------------------------------------------------------ CSV


def write_confusion_csv(path: Path, metrics: Metrics) -> None:
    """Counts with a header row of predicted labels and a first column of true labels."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true\\predicted", *metrics.labels])
        for label, row in zip(metrics.labels, metrics.confusion.tolist(), strict=True):
            writer.writerow([label, *row])


def read_confusion_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read back what :func:`write_confusion_csv` wrote: (labels, counts)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    labels = rows[0][1:]
    return labels, np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)


def write_per_class_csv(path: Path, metrics: Metrics) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "precision", "recall", "f1", "support", "predicted"])
        for c in metrics.per_class:
            writer.writerow(
                [c.label, f"{c.precision:.6f}", f"{c.recall:.6f}", f"{c.f1:.6f}", c.support, c.predicted]
            )


def write_snr_csv(path: Path, evals: list[ModelEvaluation]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "snr_db", "accuracy", "macro_f1"])
        for ev in evals:
            writer.writerow([ev.name, "clean", f"{ev.result.accuracy:.6f}", f"{ev.result.macro_f1:.6f}"])
            for r in ev.result.noisy:
                writer.writerow([ev.name, f"{r.snr_db:g}", f"{r.accuracy:.6f}", f"{r.macro_f1:.6f}"])


# ------------------------------------------------------------------------------------------------ plots


def plot_confusion(path: Path, metrics: Metrics, title: str) -> None:
    """Row-normalised colours (recall per cell) with the counts written in the cells; PNG."""
    c = metrics.confusion
    n = len(metrics.labels)
    rows = c.sum(axis=1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros(c.shape, dtype=np.float64), where=rows > 0)
    size = max(5.0, 0.42 * n + 2.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), metrics.labels, rotation=60, ha="right", fontsize=8 if n > 15 else 9)
    ax.set_yticks(range(n), metrics.labels, fontsize=8 if n > 15 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{title}\naccuracy {100 * metrics.accuracy:.2f} %, macro-F1 {metrics.macro_f1:.3f}, {metrics.num_clips} clips"
    )
    font = 7 if n <= 15 else 5
    for i in range(n):
        for j in range(n):
            if c[i, j]:
                ax.text(
                    j,
                    i,
                    str(c[i, j]),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)


def plot_snr(path: Path, evals: list[ModelEvaluation]) -> None:
    """Accuracy (%) against SNR (dB), one line per model, its clean accuracy as a dashed line."""
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    for k, ev in enumerate(evals):
        points = sorted((r.snr_db, 100 * r.accuracy) for r in ev.result.noisy)
        color = f"C{k % 10}"
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=color, label=ev.name)
        ax.axhline(
            100 * ev.result.accuracy, color=color, linestyle="--", linewidth=1, label=f"{ev.name} (clean)"
        )
    snrs = sorted({r.snr_db for ev in evals for r in ev.result.noisy})
    ax.set_xticks(snrs, [f"{snr:g}" for snr in snrs])
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy with background noise")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


# ------------------------------------------------------------------------------------------------ markdown


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _data_line(data: dict) -> str:
    return (
        f"`{data['root']}`, split **{data['split']}** (rule: {data['split_rule']}, layout: {data['layout']}), "
        f"{data['clips']} clips"
        + (f", {data['skipped_files']} unreadable file(s) skipped" if data.get("skipped_files") else "")
        + (f"; no clips of {', '.join(f'`{label}`' for label in data['labels_without_clips'])} (scored over all "
           "the model's labels, per-class figures for the labels present)" if data.get("labels_without_clips") else "")
    )


def markdown_report(evals: list[ModelEvaluation], files: dict[str, dict[str, str]] | None = None) -> str:
    """The report as markdown; ``files[name]`` maps ``confusion_png``/``confusion_csv``/... to relative paths."""
    files = files or {}
    lines = ["# Evaluation report", ""]
    datas = {json.dumps(ev.data, sort_keys=True) for ev in evals}
    if len(datas) == 1:
        lines += [f"Data: {_data_line(evals[0].data)}.", ""]
    lines += ["## Summary", ""]
    note = comparability_note(evals)
    sets = clip_sets(evals)
    if note:
        lines += [f"> **{note}** (column *clip set*; each model's data is given in its section).", ""]
    rows = []
    for ev in evals:
        lat = ev.result.latency
        rows.append(
            [
                f"`{ev.name}`",
                *([sets[ev.name]] if note else []),
                ev.backend,
                _pct(ev.result.accuracy),
                f"{ev.result.macro_f1:.3f}",
                f"{ev.num_parameters:,}",
                _ms(lat.median_ms if lat else None),
                _ms(lat.batch_ms_per_clip if lat else None),
                str(lat.threads) if lat else "-",
                str(ev.result.metrics.num_clips),
            ]
        )
    batch = next((ev.result.latency.batch_size for ev in evals if ev.result.latency), None)
    lines += _table(
        [
            "model",
            *(["clip set"] if note else []),
            "backend",
            "accuracy",
            "macro-F1",
            "parameters",
            "latency ms/clip (batch 1, median)",
            f"ms/clip (batch {batch})" if batch else "ms/clip (batched)",
            "threads",
            "clips",
        ],
        rows,
        ["---", *(["---"] if note else []), "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
    )
    lines += ["", "Latency is measured during this run on this machine (1 s clips, front end included)."]
    if any(ev.result.noisy for ev in evals):
        lines += ["", "## Noise robustness", ""]
        lines += _snr_table(evals)
        lines += [
            "",
            "Background noise from the data set mixed in at each SNR (seeded offsets, the same for every SNR); the "
            "SNR is measured against the clip's active-speech power (10 ms frames within 30 dB of its loudest "
            "frame); `_silence_` clips get noise at the median speech level.",
        ]
        if "snr_png" in files.get("", {}):
            lines += ["", f"![accuracy vs SNR]({files['']['snr_png']})"]
    for ev in evals:
        lines += ["", *model_section(ev, files.get(ev.name, {}), show_data=len(datas) > 1)]
    return "\n".join(lines) + "\n"


def _snr_table(evals: list[ModelEvaluation]) -> list[str]:
    snrs = sorted({r.snr_db for ev in evals for r in ev.result.noisy}, reverse=True)
    header = [
        "SNR (dB)",
        *[f"`{ev.name}` accuracy" for ev in evals],
        *[f"`{ev.name}` macro-F1" for ev in evals],
    ]
    rows = [
        ["clean", *[_pct(ev.result.accuracy) for ev in evals], *[f"{ev.result.macro_f1:.3f}" for ev in evals]]
    ]
    for snr in snrs:
        by = [{r.snr_db: r for r in ev.result.noisy}.get(snr) for ev in evals]
        rows.append(
            [
                f"{snr:g}",
                *[_pct(r.accuracy if r else None) for r in by],
                *[f"{r.macro_f1:.3f}" if r else "-" for r in by],
            ]
        )
    return _table(header, rows)


def model_section(ev: ModelEvaluation, files: dict[str, str], show_data: bool = False) -> list[str]:
    m = ev.result.metrics
    lines = [f"## `{ev.name}`", ""]
    lines += [f"File `{ev.path}` ({ev.backend}, {ev.num_parameters:,} parameters)."]
    if show_data:
        lines += [f"Data: {_data_line(ev.data)}."]
    lines += [
        "",
        f"Accuracy **{_pct(m.accuracy)}**, macro-F1 **{m.macro_f1:.3f}** on {m.num_clips} clips"
        + (f" (mean F1 of the labels with clips: **{m.macro_f1_present:.3f}**; torchmetrics' macro-F1 counts a label "
           "without clips that was predicted as 0)" if m.macro_f1_present is not None else "") + ".",
        "",
    ]
    lines += ["### Per class", ""]
    lines += _table(
        ["class", "precision", "recall", "F1", "support"],
        [
            [f"`{c.label}`", f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)]
            if c.support else [f"`{c.label}`", f"{c.precision:.3f}" if c.predicted else "-", "-", "-", "0 (no clips)"]
            for c in m.per_class
        ],
    )
    lines += ["", "### Most confused pairs", ""]
    if m.confused_pairs:
        lines += _table(
            ["true", "predicted as", "clips", "share of true class"],
            [[f"`{p.true}`", f"`{p.predicted}`", str(p.count), _pct(p.fraction)] for p in m.confused_pairs],
            ["---", "---", "---:", "---:"],
        )
    else:
        lines += ["None: every clip was classified correctly."]
    lines += ["", "### Confusion matrix", ""]
    if "confusion_png" in files:
        lines += [f"![confusion matrix of {ev.name}]({files['confusion_png']})", ""]
    if len(m.labels) <= MAX_MARKDOWN_CONFUSION:
        lines += ["Rows: true class; columns: predicted class.", ""]
        lines += _table(
            ["true \\ predicted", *[f"`{label}`" for label in m.labels]],
            [
                [f"`{label}`", *[str(v) for v in row]]
                for label, row in zip(m.labels, m.confusion.tolist(), strict=True)
            ],
        )
        lines += [""]
    if "confusion_csv" in files:
        lines += [
            f"Counts: `{files['confusion_csv']}`; per-class numbers: `{files.get('per_class_csv', '')}`."
        ]
    return lines


# ------------------------------------------------------------------------------------------------ files


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Refuse an existing, non-empty report folder unless ``overwrite`` (call before the long evaluation)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder", param="out_dir")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{out}: report folder exists and is not empty; refusing to overwrite it", param="overwrite"
        )
    check_can_create(out, "report folder", param="out_dir")
    return out


def check_outputs(out_dir: str | Path | None, json_path: str | Path | None, overwrite: bool = False) -> None:
    """Every output check, to run before an evaluation starts: existing files, unwritable places, and a JSON
    file (``json_path``) that the report in ``out_dir`` would write over."""
    if out_dir:
        check_out_dir(out_dir, overwrite)
    if json_path:
        check_json_path(json_path, overwrite)
    if out_dir and json_path:
        inside = Path(json_path).resolve().parent == Path(out_dir).resolve()
        if inside and Path(json_path).name in ("report.json", "report.md"):
            raise OutputExistsError(
                f"{json_path}: the report written to {out_dir} has a file of that name; choose another name or "
                "place for the JSON file",
                param="json_path",
            )


def write_report(
    evals: list[ModelEvaluation], out_dir: str | Path, overwrite: bool = False
) -> dict[str, Path]:
    """Write every report file into ``out_dir`` (created); returns ``{what: path}``."""
    out = check_out_dir(out_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    rel: dict[str, dict[str, str]] = {"": {}}
    for ev in evals:
        names = {
            "confusion_csv": f"{ev.name}.confusion.csv",
            "confusion_png": f"{ev.name}.confusion.png",
            "per_class_csv": f"{ev.name}.per_class.csv",
        }
        write_confusion_csv(out / names["confusion_csv"], ev.result.metrics)
        write_per_class_csv(out / names["per_class_csv"], ev.result.metrics)
        plot_confusion(out / names["confusion_png"], ev.result.metrics, ev.name)
        rel[ev.name] = names
        written.update({f"{ev.name}.{key}": out / value for key, value in names.items()})
    if any(ev.result.noisy for ev in evals):
        write_snr_csv(out / "snr.csv", evals)
        plot_snr(out / "snr.png", evals)
        rel[""] = {"snr_csv": "snr.csv", "snr_png": "snr.png"}
        written["snr_csv"], written["snr_png"] = out / "snr.csv", out / "snr.png"
    (out / "report.md").write_text(markdown_report(evals, rel), encoding="utf-8")
    written["markdown"] = out / "report.md"
    written["json"] = write_json(out / "report.json", report_json(evals), overwrite=True)
    return written
