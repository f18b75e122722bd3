#!/usr/bin/env python
"""Package a trained checkpoint as the model that comes with speech, reproducibly, with its measured card.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/package_model.py CKPT [--force]

Writes ``speech/models/commands.onnx`` (the packaged model: ONNX with its metadata, the record of its training
data and calibrated thresholds), ``speech/models/commands.json`` (its card figures) and the generated blocks of
``docs/model-card.md`` (between the ``<!-- generated:NAME:begin -->`` / ``end`` markers). Each step is a ``speech``
command, run with ``--threads 1`` and ``OMP_NUM_THREADS=1`` from the repository root, logged in the work folder
and recorded in the card as it ran:

1. ``speech export CKPT``: the checkpoint as ONNX (given an exported ``.onnx`` instead, e.g. the packaged model after
   a change of the detector's defaults, it is copied as it is, and its card's checkpoint and training command kept);
2. ``speech calibrate``: per-keyword thresholds for 0.5 false accepts per hour (``--target-fa``) on the model's
   calibration part (the validation speakers of ``../shared/data/sc-v2-test-fit`` and the calibration readers of
   ``../shared/data/librispeech-mini``), stored in the exported file, the one that ships;
3. ``speech evaluate``: 12-class clip accuracy on the test part of ``sc-v2-test-fit`` and of
   ``sc-v2-train-4words`` (the split each folder had in training, from the model's record);
4. ``speech stream-test``: keyword recall at the calibrated thresholds, wrong keywords, delay, false accepts per
   hour of the test readers' running speech, on streams of the test speakers of both folders (40 minutes for the
   four words' larger test part);
5. cost per 100 ms hop of the live engine and cold start of ``speech live MODEL --wav clip`` (the measurements of
   ``scripts/bench_runtime.py``), on this install and, with ``--base-venv``, on a base install;
6. the training data per class (clips and speakers of each part, rebuilt from the record and checked against it)
   and the running-speech readers.

Every figure is on speakers and readers the model never trained on and that picked nothing (not the checkpoint,
not the thresholds): the script stops (exit 1) if a report says otherwise. It refuses to replace an existing
packaged model unless ``--force``. ``--work DIR`` keeps the step outputs there; run again with the same ``DIR``
(and the same checkpoint) and finished steps are reused. ``--quick`` makes short streams for a smoke test; its
figures are not for a card (written only with ``--models-dir`` elsewhere).

Exit codes: 0 done; 2 bad input (a missing checkpoint, an existing output without ``--force``, a model card without
the markers); 1 a step failed or a check did not hold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's speech, also when run from elsewhere
sys.path.insert(1, str(REPO / "scripts"))

import bench_runtime  # noqa: E402  (the runtime measurements: one place)

from speech.errors import SpeechError  # noqa: E402
from speech.models import DEFAULT_MODEL, PACKAGED, packaged_path  # noqa: E402
from speech.utils.files import check_new_file, replaced_atomically, write_text_atomically  # noqa: E402

MAIN_FOLDER = "sc-v2-test-fit"
FOUR_WORDS = "sc-v2-train-4words"
RUNNING = "librispeech-mini"
TARGET_FA = 0.5  # false accepts per hour of the calibration readers' running speech
FOUR_WORDS_MINUTES = 40.0
CARD_DOC = REPO / "docs" / "model-card.md"
BLOCKS = ("model", "data", "figures")
DEFAULT_TRAINING = "speech train --config configs/packaged.yaml"
MAX_BYTES = 3_000_000


class Refused(SpeechError):
    """Bad input to the script (exit 2)."""


class Failed(RuntimeError):
    """A step failed or a check did not hold (exit 1)."""


def shown(path: Path | str) -> str:
    """``path`` as typed from the repository root (relative when below the repo's parent, e.g. ../shared)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    relative = os.path.relpath(path, REPO)
    return relative if relative.count("..") <= 1 else path.as_posix()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Steps:
    """Runs ``speech`` commands from the repository root, one thread each, logging to the work folder; a step whose
    output is already in the work folder is reused."""

    def __init__(self, work: Path, say) -> None:
        self.work = work
        self.say = say
        self.commands: list[str] = []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def speech(self, name: str, args: list[str], output: Path, threads: bool = True) -> Path:
        argv = [args[0], *(["--threads", "1"] if threads else []), *args[1:]]
        self.commands.append("speech " + shlex.join(argv).replace(shown(self.work), "WORK"))
        if output.exists():
            self.say(f"{name}: reusing {shown(output)}")
            return output
        self.say(f"{name}: speech {shlex.join(argv)}")
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(log, "w", encoding="utf-8") as handle:
            done = subprocess.run([sys.executable, "-m", "speech", *argv], cwd=REPO, env=self.env, stdout=handle,
                                  stderr=subprocess.STDOUT)
        if done.returncode != 0 or not output.exists():
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise Failed(f"{name} failed (exit {done.returncode}; log {shown(log)}): " + " | ".join(tail))
        self.say(f"{name}: done in {time.perf_counter() - start:.0f} s")
        return output


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def exported_origin(model: Path) -> dict:
    """What the card of a model packaged again from its exported ``.onnx`` carries over: the checkpoint and training
    command of the card beside it (``NAME.json``, when that card describes exactly this file) and the file itself as
    ``repackaged_from``; for an ONNX file without such a card, only the latter (the checkpoint is then the file)."""
    from speech.model.model_file import read_metadata

    try:
        read_metadata(model)
    except SpeechError as exc:
        raise Refused(f"{model}: not a model exported by 'speech export' ({exc})") from None
    digest = sha256(model)
    origin = {"repackaged_from": {"path": shown(model), "sha256": digest}}
    card_path = model.with_suffix(".json")
    card = read_json(card_path) if card_path.is_file() else {}
    if card.get("format") == "speech-model-card" and card.get("file", {}).get("sha256") == digest:
        origin.update(checkpoint=card["built"]["checkpoint"], training_command=card["built"]["training_command"])
    return origin


# -- the training data, from the model's record ---------------------------------------------------------------------


def part_counts(examples: list, labels: list[str]) -> dict:
    clips = {label: 0 for label in labels}
    speakers: dict[str, set] = {label: set() for label in labels}
    for ex in examples:
        clips[labels[ex.label]] += 1
        if ex.speaker:
            speakers[labels[ex.label]].add(ex.speaker)
    return {"clips": len(examples), "speakers": len({ex.speaker for ex in examples if ex.speaker}),
            "clips_per_label": clips, "speakers_per_label": {k: len(v) for k, v in speakers.items()}}


def training_data(meta: dict, data_root: Path) -> dict:
    """Clips and speakers per label of every part of every folder the model read, rebuilt from its record (and
    checked against the record's own counts and speakers); the running-speech readers of each part."""
    from speech.data import build_index
    from speech.data.record import DataRecord
    from speech.data.sources import read_extra_source
    from speech.data.splits import SPLITS, keep_speakers

    record = DataRecord.from_dict(meta.get("data"))
    check(record is not None, "the model carries no record of its training data")
    labels = list(meta["labels"])
    parts_of = {}
    main = record.main_folder()
    index = build_index(data_root / MAIN_FOLDER, labels=record.labels, split=main.split)
    check(list(index.labels) == labels, f"rebuilt labels {index.labels} differ from the model's {labels}")
    main_parts = {name: list(index.splits[name]) for name in SPLITS}
    main_parts["training"] = keep_speakers(main_parts["training"], record.training_speakers_percent, main.split.seed)
    parts_of[MAIN_FOLDER] = (main, main_parts)
    for source in record.sources:
        name = Path(source.root).name
        extra = read_extra_source(data_root / name, labels, source.split,
                                  training_speakers_percent=source.training_speakers_percent)
        parts_of[name] = (source, extra.parts)
    trained = set(record.training_speakers)
    all_training = set()
    folders = []
    for name, (folder, parts) in parts_of.items():
        counts = {part: part_counts(parts[part], labels) for part in SPLITS}
        for part in SPLITS:  # the main folder's recorded training count is everything trained on: checked below
            expected = None if part == "training" and name == MAIN_FOLDER else folder.clips.get(part)
            check(expected is None or counts[part]["clips"] == expected,
                  f"{name}: the rebuilt {part} part has {counts[part]['clips']} clips, the record {folder.clips}")
        speakers = {ex.speaker for ex in parts["training"] if ex.speaker}
        check(speakers <= trained, f"{name}: rebuilt training speakers missing from the record")
        all_training |= speakers
        for part in ("validation", "testing"):
            held = {ex.speaker for ex in parts[part] if ex.speaker}
            check(not held & trained, f"{name}: {len(held & trained)} {part} speakers are training speakers")
        folders.append({"folder": name, "root": shown(data_root / name), "split": folder.split.to_record(), **counts})
    check(all_training == trained, "the rebuilt training speakers differ from the record's "
          f"({len(all_training)} against {len(trained)})")
    check(sum(f["training"]["clips"] for f in folders) == record.clips["training"],
          "the rebuilt training clips differ from the record's")
    running = record.running_speech or {}
    split = (running.get("reader_split") or {}).get("parts", {})
    readers = {part: sorted(r for r, p in split.items() if p == part) for part in ("train", "calibration", "test")}
    check(set(running.get("training_readers") or []) <= set(readers["train"]),
          "a training reader is outside the record's train part")
    return {"folders": folders, "training_clips": record.clips["training"], "training_speakers": len(trained),
            "running_speech": {"root": shown(data_root / Path(running.get("root", RUNNING)).name),
                               "readers": readers, "training_readers": sorted(running.get("training_readers") or []),
                               "training_windows": running.get("windows"),
                               "keyword_free_sentences": running.get("keyword_free_sentences"),
                               "sentences": running.get("sentences", "keyword_free"),
                               "sentences_used": running.get("sentences_used",
                                                             running.get("keyword_free_sentences"))} if running else None}


# -- figures ----------------------------------------------------------------------------------------------------------


def clip_figures(report: dict, folder: str) -> dict:
    d = report["data"]
    check(d.get("clips_of_training_speakers") == 0, f"evaluate on {folder} scored clips of training speakers")
    check(d["split_settings"]["source"] == "model record", f"evaluate on {folder}: the split is not the model's own")
    check(d["split"] == "test", f"evaluate on {folder} scored the {d['split']} part, not the test part")
    return {"accuracy": report["accuracy"], "clips": d["clips"], "speakers": d.get("speakers", 0),
            "part": d["split"], "clips_per_label": d["clips_per_label"],
            "labels_without_clips": d.get("labels_without_clips", [])}


def stream_figures(report: dict, folder: str, calibration_readers: list[str]) -> dict:
    s = report["split"]
    check(s["partition"] == "test" and s["source"] == "model record", f"stream-test on {folder}: not the test part")
    check(s["clips_of_training_speakers"] == 0 and s["training_record"], f"stream-test on {folder}: training speakers")
    check(not report.get("calibration_speakers_in_streams"), f"stream-test on {folder}: calibration speakers in it")
    check(report["threshold_source"].startswith("calibrated"), f"stream-test on {folder}: not at the calibrated "
          f"thresholds ({report['threshold_source']})")
    figures = {
        "minutes": report["streams"]["keyword_stream_seconds"] / 60, "speakers": s["speakers"],
        "keyword_words": report["keyword_words"], "recall": report["keyword_recall"],
        "wrong": report["keyword_wrong"], "missed": report["keyword_missed"],
        "median_delay_ms": report["median_delay_ms"], "p90_delay_ms": report["p90_delay_ms"],
        "per_keyword": report["per_keyword"],
        "false_accepts_per_hour_other_words": report["false_accepts_per_hour"],
        "non_keyword_words": report["non_keyword_words"],
        "false_alarms_per_hour_noise": report["false_alarms_per_hour"],
        "noise_minutes": report["streams"]["noise_seconds"] / 60, "noise": s["noise"],
    }
    r = report.get("running_speech")
    if r is not None:
        readers = r["source"]["readers"]
        check(r["source"]["readers_part"] == "test" and r["source"]["reader_split_from"] == "model record",
              f"stream-test on {folder}: running speech not of the recorded test readers")
        check(not set(readers) & set(calibration_readers), f"stream-test on {folder}: calibration readers in it")
        figures["running_speech"] = {
            "false_accepts_per_hour": r["false_accepts_per_hour"], "false_accepts": r["false_accepts"],
            "false_accepts_per_hour_95": r.get("false_accepts_per_hour_95"),
            "hours": r["stream"]["speech_seconds"] / 3600, "stream_hours": r["stream"]["stream_seconds"] / 3600,
            "sentences": r["stream"]["sentences"], "readers": readers,
            "false_accepts_by_keyword": r["false_accepts_by_keyword"],
        }
    return figures


def runtime_figures(model: Path, base_venv: Path | None, say) -> dict:
    """Cost per 100 ms hop (median / p99 of thread CPU time, gate off, one thread) and cold start of ``speech live
    MODEL --wav one_clip.wav --json`` (median, min, max of 5), as scripts/bench_runtime.py measures them."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one, long = bench_runtime.make_inputs(tmp, 60.0)
        installs = {"full install": Path(sys.prefix)} | ({"base install": base_venv} if base_venv else {})
        for what, env in installs.items():
            python = env / "bin" / "python"
            hop = subprocess.run([str(python), "-c", bench_runtime.HOP_SNIPPET, str(model), str(long)],
                                 capture_output=True, text=True, cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"})
            check(hop.returncode == 0, f"the hop measurement failed: {hop.stderr[-500:]}")
            cold = [bench_runtime.run_measured([str(env / "bin" / "speech"), "live", str(model), "--wav", str(one),
                                                "--json"], tmp)[0] for _ in range(5)]
            out[what] = {"hop_ms": json.loads(hop.stdout),
                         "cold_start_s": {"median": sorted(cold)[2], "min": min(cold), "max": max(cold)}}
            say(f"runtime ({what}): hop {out[what]['hop_ms']['median_ms']:.2f} ms, cold start "
                f"{out[what]['cold_start_s']['median']:.2f} s")
    return out


# -- the card ---------------------------------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} %"


def fa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def model_block(card: dict) -> list[str]:
    b, f = card["built"], card["file"]
    lines = [
        f"- file: `speech/models/{f['name']}`, {f['bytes']:,} bytes, SHA-256 `{f['sha256'][:16]}…`; "
        f"{card['num_parameters']:,} parameters, {card['window_ms']:g} ms window, labels {', '.join(card['labels'])}",
        f"- from `{b['checkpoint']['path']}` (SHA-256 `{b['checkpoint']['sha256'][:16]}…`), packaged {b['date']} "
        f"with speech {b['versions']['speech']}, torch {b['versions']['torch']}, ONNX Runtime "
        f"{b['versions']['onnxruntime']}"
        + (f"; calibrated and measured again from the packaged file (SHA-256 `{b['repackaged_from']['sha256'][:16]}…`)"
           if "repackaged_from" in b else ""),
        "",
        "```bash",
        f"{b['training_command']}   # training (CPU, one thread)",
        f"OMP_NUM_THREADS=1 .venv/bin/python scripts/package_model.py {b['checkpoint']['path']}"
        "   # all of what follows",
        "# which ran, from the repository root with OMP_NUM_THREADS=1 (WORK: its work folder):",
        *b["commands"],
        "```",
    ]
    return lines


def data_block(card: dict) -> list[str]:
    d = card["data"]
    labels = card["labels"]
    lines = [f"Trained on {d['training_clips']:,} clips of {d['training_speakers']:,} speakers; clips (speakers) per "
             "class in each part, rebuilt from the model's record of its split:", ""]
    head = "| folder | part | " + " | ".join(f"`{label}`" for label in labels) + " | all |"
    lines += [head, "|---|---|" + "---:|" * (len(labels) + 1)]
    for folder in d["folders"]:
        checked = "validation (picked the checkpoint" + ("; the thresholds)" if folder["folder"] == MAIN_FOLDER else ")")
        for part, shown_part in (("training", "train"), ("validation", checked), ("testing", "**test**")):
            c = folder[part]
            if not c["clips"]:
                continue
            cells = [f"{c['clips_per_label'][k]} ({c['speakers_per_label'][k]})" if c["clips_per_label"][k] else "–"
                     for k in labels]
            lines.append(f"| `{folder['root']}` | {shown_part} | " + " | ".join(cells)
                         + f" | {c['clips']:,} ({c['speakers']:,}) |")
    r = d.get("running_speech")
    if r:
        cut_from = (f"all {r['sentences_used']} of their sentences, those that say a keyword too"
                    if r.get("sentences") == "all" else f"{r['keyword_free_sentences']} sentences that say no keyword")
        lines += ["", f"Running speech (`{r['root']}`, read LibriSpeech sentences): "
                  f"{len(r['training_readers'])} readers trained on ({r['training_windows']:,} windows cut from "
                  f"{cut_from}; readers {', '.join(r['training_readers'])}), "
                  f"{len(r['readers']['calibration'])} calibration readers ({', '.join(r['readers']['calibration'])}: "
                  f"the thresholds), {len(r['readers']['test'])} test readers ({', '.join(r['readers']['test'])}: the "
                  "false accepts below)."]
    return lines


def figures_block(card: dict) -> list[str]:
    f = card["figures"]
    clip, streams = f["clip_accuracy"], f["streams"]
    main = streams.get(MAIN_FOLDER)
    cal = card["calibration"]
    lines = ["| figure | value | measured on |", "|---|---|---|"]
    for folder, c in clip.items():
        words = [k for k in card["labels"] if k not in c["labels_without_clips"]]
        what = (f"{len(words)} classes" if len(words) == len(card["labels"])
                else f"clips of {', '.join(words)} (scored over all {len(card['labels'])} classes)")
        lines.append(f"| clip accuracy, {what} | **{100 * c['accuracy']:.2f} %** | {c['clips']:,} clips of "
                     f"{c['speakers']} test speakers of `{folder}` |")
    for folder, s in streams.items():
        lines.append(f"| keywords caught at its thresholds (wrong) | **{pct(s['recall'])}** ({pct(s['wrong'])}) | "
                     f"{s['keyword_words']} keywords of {s['speakers']} test speakers of `{folder}`, a "
                     f"{s['minutes']:.0f}-minute stream |")
    if main and main.get("running_speech"):
        r = main["running_speech"]
        lines.append(f"| false accepts per hour of running speech | **{fa(r['false_accepts_per_hour'])}** "
                     f"({r['false_accepts']} in {r['hours']:.2f} h of speech; 95 % bound "
                     f"{fa(r['false_accepts_per_hour_95'])}) | {r['sentences']} sentences of the {len(r['readers'])} "
                     "test readers |")
    for folder, s in streams.items():
        if s["false_accepts_per_hour_other_words"] is not None:
            lines.append(f"| false accepts per hour of other words | {fa(s['false_accepts_per_hour_other_words'])} | "
                         f"{s['non_keyword_words']} `_unknown_` words (bed, bird, cat, ...) of the test speakers of "
                         f"`{folder}`, one every 3 s |")
    for folder, s in streams.items():
        lines.append(f"| false alarms per hour of noise | {fa(s['false_alarms_per_hour_noise'])} | "
                     f"{s['noise_minutes']:.0f} min of {s['noise']} (`{folder}`) |")
    for folder, s in streams.items():
        if s["median_delay_ms"] is not None:
            lines.append(f"| delay, end of word to event: median (p90) | {s['median_delay_ms']:.0f} ms "
                         f"({s['p90_delay_ms']:.0f} ms) | the keywords of `{folder}` above |")
    for what, r in f["runtime"].items():
        lines.append(f"| cost per 100 ms hop, median / p99 (one thread) | {r['hop_ms']['median_ms']:.2f} / "
                     f"{r['hop_ms']['p99_ms']:.2f} ms | {what}, the 2-core VM |")
    for what, r in f["runtime"].items():
        c = r["cold_start_s"]
        lines.append(f"| cold start, `speech live MODEL --wav clip` | {c['median']:.2f} s ({c['min']:.2f}–"
                     f"{c['max']:.2f}) | {what}, median (min–max) of 5 |")
    lines.append(f"| size | {card['file']['bytes'] / 1e6:.2f} MB | `speech/models/{card['file']['name']}` |")
    lines += ["", "Per keyword, caught at its threshold (keywords in the test streams):", "",
              "| keyword | threshold | " + " | ".join(f"`{folder}`" for folder in streams) + " |",
              "|---|---:|" + "---:|" * len(streams)]
    for keyword, threshold in card["thresholds"].items():
        cells = []
        for s in streams.values():
            row = s["per_keyword"].get(keyword)
            cells.append(f"{row['recall']:.0f} % of {row['words']}" if row else "–")
        mark = " (over target)" if keyword in cal.get("over_target", []) else ""
        lines.append(f"| `{keyword}` | {threshold:.2f}{mark} | " + " | ".join(cells) + " |")
    lines += ["", f"Thresholds: calibrated for {cal['target_false_accepts_per_hour']:g} false accepts per hour of the "
              f"{len(cal['readers'])} calibration readers' running speech, on {cal['speakers']} validation speakers' "
              f"keywords (`{cal['root']}`)"
              + (f"; over the target on the calibration streams at any threshold: {', '.join(cal['over_target'])}"
                 if cal.get("over_target") else "") + "."]
    return lines


def with_blocks(text: str, blocks: dict[str, list[str]], doc: Path) -> str:
    for name, lines in blocks.items():
        begin, end = f"<!-- generated:{name}:begin -->", f"<!-- generated:{name}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if len(pattern.findall(text)) != 1:
            raise Refused(f"{doc}: expected one '{begin}' ... '{end}' block")
        body = "\n".join([begin, "<!-- written by scripts/package_model.py; do not edit by hand -->", *lines, end])
        text = pattern.sub(lambda _, body=body: body, text)
    return text


def card_blocks(card: dict) -> dict[str, list[str]]:
    return {"model": model_block(card), "data": data_block(card), "figures": figures_block(card)}


# -- main -------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, metavar="CKPT", help="the trained checkpoint (.ckpt), or a model "
                        "exported from one (.onnx, e.g. the packaged model: calibrated and measured again, its card's "
                        "checkpoint and training command kept)")
    parser.add_argument("--name", default=DEFAULT_MODEL, choices=sorted(PACKAGED), help="packaged name (commands)")
    parser.add_argument("--force", action="store_true", help="replace an existing packaged model and card")
    parser.add_argument("--work", type=Path, help="work folder for the step outputs (default: a new "
                        "speech-runs/package-NAME-TIME); an existing one of the same checkpoint is resumed")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data",
                        help="the folder holding sc-v2-test-fit, sc-v2-train-4words, librispeech-mini (../shared/data)")
    parser.add_argument("--training-command", default=DEFAULT_TRAINING,
                        help=f"how the checkpoint was trained, for the card (default: {DEFAULT_TRAINING!r})")
    parser.add_argument("--base-venv", type=Path, help="also measure the runtime on this base install (pip install .)")
    parser.add_argument("--models-dir", type=Path, help="write the model and card here instead of speech/models/")
    parser.add_argument("--card-doc", type=Path, default=CARD_DOC, help="the model card to regenerate (docs/model-card.md)")
    parser.add_argument("--quick", action="store_true", help="short streams (a smoke test; needs --models-dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say = print
    try:
        return package(args, say)
    except SpeechError as exc:
        print(f"package_model: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Failed as exc:
        print(f"package_model: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("package_model: interrupted", file=sys.stderr)
        return 130


def package(args: argparse.Namespace, say) -> int:
    import onnxruntime

    import speech
    from speech.model.model_file import read_metadata

    for name in ("checkpoint", "work", "models_dir", "card_doc", "data_root", "base_venv"):
        if getattr(args, name) is not None:  # the steps run from the repository root
            setattr(args, name, getattr(args, name).absolute())
    ckpt = args.checkpoint
    if not ckpt.is_file():
        raise Refused(f"{ckpt}: no such checkpoint file (expected the .ckpt written by 'speech train', or a model "
                      "exported from one, .onnx)")
    origin = exported_origin(ckpt) if ckpt.suffix == ".onnx" else None
    if args.quick and args.models_dir is None:
        raise Refused("--quick makes figures that are not for the packaged model: give --models-dir elsewhere")
    target = (args.models_dir / PACKAGED[args.name][0]) if args.models_dir else packaged_path(args.name)
    card_target = target.with_suffix(".json")
    for path, what in ((target, "packaged model"), (card_target, "model card figures")):
        try:
            check_new_file(path, what, overwrite=args.force)
        except SpeechError as exc:
            raise Refused(f"{exc}" + ("; pass --force to replace it" if path.exists() else "")) from None
    if not args.card_doc.is_file():
        raise Refused(f"{args.card_doc}: no such model card (expected docs/model-card.md with the generated blocks)")
    with_blocks(args.card_doc.read_text(encoding="utf-8"), {name: [] for name in BLOCKS}, args.card_doc)
    data_root = args.data_root
    for folder in (MAIN_FOLDER, FOUR_WORDS, RUNNING):
        if not (data_root / folder).is_dir():
            raise Refused(f"{data_root / folder}: no such folder (--data-root holds {MAIN_FOLDER}, {FOUR_WORDS}, {RUNNING})")
    ckpt_sha = sha256(ckpt)
    work = args.work or REPO / "speech-runs" / f"package-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    stamp = work / "checkpoint.json"
    if stamp.is_file():
        if read_json(stamp).get("sha256") != ckpt_sha:
            raise Refused(f"{work}: a work folder of another checkpoint ({read_json(stamp).get('path')}); give a new --work")
    elif work.exists() and any(work.iterdir()):
        raise Refused(f"{work}: exists and is no work folder of this script; give a new --work")
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"path": shown(ckpt), "sha256": ckpt_sha, "quick": args.quick}) + "\n")
    say(f"packaging {shown(ckpt)} as '{args.name}' (work folder {shown(work)})")

    steps = Steps(work, say)
    main_data, four, running = (shown(data_root / f) for f in (MAIN_FOLDER, FOUR_WORDS, RUNNING))
    if origin is None:
        exported = steps.speech("export", ["export", shown(ckpt), "--onnx", shown(work / "exported.onnx")],
                                work / "exported.onnx", threads=False)
    else:  # an exported model: calibrated and measured again as it is (its stored thresholds are replaced)
        exported = work / "exported.onnx"
        if not exported.exists():
            shutil.copyfile(ckpt, exported)
        steps.commands.append(f"cp {shown(ckpt)} WORK/exported.onnx")
    quick = ["--minutes", "1", "--running-minutes", "3"] if args.quick else []
    model = steps.speech("calibrate", ["calibrate", shown(exported), "--data", main_data, "--running-speech", running,
                                       "--target-fa", f"{TARGET_FA:g}", *quick, "--out", shown(work / target.name),
                                       "--report", shown(work / "calibration"), "--json",
                                       shown(work / "calibration.json")], work / target.name)
    evals, streams = {}, {}
    for folder, data in ((MAIN_FOLDER, main_data), (FOUR_WORDS, four)):
        evals[folder] = steps.speech(f"evaluate-{folder}", ["evaluate", shown(model), "--data", data, "--json",
                                                            shown(work / f"evaluate-{folder}.json")],
                                     work / f"evaluate-{folder}.json")
    for folder, data, minutes in ((MAIN_FOLDER, main_data, []), (FOUR_WORDS, four, ["--minutes", f"{FOUR_WORDS_MINUTES:g}"])):
        if args.quick:
            minutes = ["--minutes", "1", "--running-minutes", "3"]
        streams[folder] = steps.speech(f"stream-test-{folder}", ["stream-test", shown(model), "--data", data, "--split",
                                                                 "test", "--running-speech", running, *minutes,
                                                                 "--out", shown(work / f"stream-test-{folder}"),
                                                                 "--json", shown(work / f"stream-test-{folder}.json")],
                                       work / f"stream-test-{folder}.json")

    meta = read_metadata(model)
    calibration = read_json(work / "calibration.json")
    cal_readers = calibration["calibrated_on"].get("running_speech", {}).get("readers", [])
    detection = meta.get("detection") or {}
    check(detection.get("thresholds") == calibration["thresholds"], "the model's thresholds are not the calibration's")
    say("data: rebuilding every part from the model's record")
    data = training_data(meta, data_root)
    test_readers = data["running_speech"]["readers"]["test"] if data["running_speech"] else []
    check(not set(test_readers) & set(data["running_speech"]["training_readers"] if data["running_speech"] else []),
          "a test reader was trained on")
    calibrated_on = calibration["calibrated_on"]
    check(calibrated_on["partition"] == "validation", "calibrated on another part than validation")
    say("runtime: cost per hop and cold start")
    runtime = runtime_figures(model, args.base_venv, say)
    size = model.stat().st_size
    check(size <= MAX_BYTES, f"{shown(model)}: {size:,} bytes, over the {MAX_BYTES:,} a packaged model may take")
    card = {
        "format": "speech-model-card",
        "version": 1,
        "name": args.name,
        "file": {"name": target.name, "bytes": size, "sha256": sha256(model)},
        "labels": list(meta["labels"]),
        "window_ms": meta["frontend"]["window_ms"],
        "num_parameters": meta["num_parameters"],
        "thresholds": detection["thresholds"],
        "calibration": {"target_false_accepts_per_hour": TARGET_FA, "root": main_data,
                        "partition": calibrated_on["partition"], "speakers": calibrated_on["speakers"],
                        "readers": cal_readers, "over_target": calibration.get("over_target", [])},
        "built": {
            "date": time.strftime("%Y-%m-%d"),
            "checkpoint": {"path": shown(ckpt), "sha256": ckpt_sha},
            "training_command": args.training_command,
            **(origin or {}),
            "commands": steps.commands,
            "quick": args.quick,
            "versions": {"speech": speech.__version__, "onnxruntime": onnxruntime.__version__,
                         "torch": meta.get("torch_version")},
        },
        "data": data,
        "figures": {
            "clip_accuracy": {f: clip_figures(read_json(p), f) for f, p in evals.items()},
            "streams": {f: stream_figures(read_json(p), f, cal_readers) for f, p in streams.items()},
            "runtime": runtime,
        },
    }
    doc_text = with_blocks(args.card_doc.read_text(encoding="utf-8"), card_blocks(card), args.card_doc)
    with replaced_atomically(target, overwrite=args.force) as tmp:
        tmp.write_bytes(model.read_bytes())
    write_text_atomically(card_target, json.dumps(card, indent=2) + "\n", overwrite=args.force)
    write_text_atomically(args.card_doc, doc_text, overwrite=True)
    c = card["figures"]["clip_accuracy"][MAIN_FOLDER]
    s = card["figures"]["streams"][MAIN_FOLDER]
    say(f"wrote {shown(target)} ({size:,} bytes), {shown(card_target)} and the figures of {shown(args.card_doc)}")
    say(f"  clip accuracy {100 * c['accuracy']:.2f} % on {c['clips']} test clips of {MAIN_FOLDER}; keywords caught "
        f"{pct(s['recall'])} (wrong {pct(s['wrong'])}); false accepts per hour of running speech "
        f"{fa(s.get('running_speech', {}).get('false_accepts_per_hour'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
