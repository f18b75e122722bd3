"""The offline quickstart: synthesise a 12-label set, train, evaluate, export, stream-test, in one go.

Every step is the real ``speech`` command a user would run by hand; this module only chains them and
prints what to do next. Everything goes below one output folder; a second run reuses the synthetic data
and trains a new run version (nothing is overwritten).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import speech
from speech.cli import main as speech_main
from speech.data.labels import COMMAND_WORDS_10

log = logging.getLogger(__name__)

CONFIGS = Path(speech.__file__).resolve().parents[1] / "configs"
SHARED_REAL = Path(speech.__file__).resolve().parents[2] / "shared" / "data" / "sc-v2-test-fit"


@dataclass
class HeldOut:
    """An accuracy on clips of speakers the model never trained on, and which clips those were."""

    accuracy: float
    clips: int
    speakers: int
    partition: str
    root: str
    source: str  # "model record": the run's own held-out split; "defaults": a folder it never saw


@dataclass
class QuickstartResult:
    out: Path
    checkpoint: Path
    onnx: Path
    synthetic: HeldOut
    real: HeldOut | None
    stream: dict
    seconds: float

    @property
    def synthetic_accuracy(self) -> float:
        return self.synthetic.accuracy

    @property
    def real_accuracy(self) -> float | None:
        return None if self.real is None else self.real.accuracy


def run(cmd: list[str]) -> None:
    log.info("$ speech %s", " ".join(cmd))
    code = speech_main(cmd)
    if code:
        raise RuntimeError(f"'speech {' '.join(cmd)}' failed with exit code {code}")


def _manifest(folder: Path) -> dict:
    """The folder's synth.json ({} when there is none or it is unreadable)."""
    from speech.synth import read_manifest

    try:
        return read_manifest(folder) or {}
    except ValueError:
        return {}


def newest_run(runs: Path) -> Path:
    versions = sorted(runs.glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if not versions:
        raise RuntimeError(f"training wrote no run folder below {runs}")
    return versions[-1]


def quickstart(
    out: str | Path = "quickstart",
    per_word: int = 120,
    epochs: int = 12,
    stream_minutes: float = 3.0,
    seed: int = 0,
    real_data: str | Path | None = SHARED_REAL,
) -> QuickstartResult:
    """Run the whole pipeline offline below ``out``; returns the figures it printed."""
    start = time.perf_counter()
    out = Path(out)
    synth = out / "synth-12"
    manifest = _manifest(synth)
    # complete: a finished run (older synth versions wrote the manifest only at the end, without "complete")
    if manifest.get("complete", bool(manifest.get("counts"))):
        log.info("reusing the synthetic data set in %s", synth)
    else:  # new, or cut short earlier: --overwrite replaces only what that run wrote
        run(["synth", "--words", ",".join(COMMAND_WORDS_10), "--per-word", str(per_word), "--seed", str(seed),
             "--out", str(synth), "--no-progress", *(["--overwrite"] if manifest else [])])
    runs = out / "runs"
    run(["train", "--config", str(CONFIGS / "quickstart.yaml"), "--data.root", str(synth),
         "--data.cache_dir", str(out / "cache"), "--trainer.default_root_dir", str(runs),
         "--trainer.max_epochs", str(epochs), "--seed_everything", str(seed)])
    run_dir = newest_run(runs / "quickstart")
    (best,) = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    reports = run_dir / "reports"
    # No --split: the checkpoint's record of its training split picks the held-out partition of the synthetic
    # set (its voices were never trained on), exactly as 'speech evaluate' does for a user.
    run(["evaluate", str(best), "--data", str(synth), "--cache-dir", str(out / "cache"),
         "--out", str(reports / "synthetic-test"), "--json", str(reports / "synthetic-test.json")])
    synthetic = held_out(json.loads((reports / "synthetic-test.json").read_text()), "synthetic")
    real = None
    if real_data is not None and Path(real_data).is_dir():
        run(["evaluate", str(best), "--data", str(real_data), "--cache-dir", str(out / "cache"),
             "--out", str(reports / "real-test"), "--json", str(reports / "real-test.json")])
        real = held_out(json.loads((reports / "real-test.json").read_text()), "real")
    onnx = run_dir / "model.onnx"
    run(["export", str(best), "--onnx", str(onnx)])
    run(["stream-test", str(onnx), "--data", str(synth), "--minutes", str(stream_minutes),
         "--stream-seed", str(seed), "--out", str(reports / "stream-test"), "--json", str(reports / "stream-test.json")])
    stream = json.loads((reports / "stream-test.json").read_text())
    return QuickstartResult(out, best, onnx, synthetic, real, stream, time.perf_counter() - start)


def held_out(report: dict, what: str) -> HeldOut:
    """The figures of one 'speech evaluate' JSON report; refuses one that scored clips of training speakers."""
    data = report["data"]
    if data.get("clips_of_training_speakers"):
        raise RuntimeError(f"the {what} evaluation scored {data['clips_of_training_speakers']} clips of training speakers")
    return HeldOut(float(report["accuracy"]), int(data["clips"]), int(data.get("speakers", 0)), data["split"],
                   str(data["root"]), data.get("split_settings", {}).get("source", "defaults"))


def _stream_line(s: dict) -> str:
    """The streaming figures, from either JSON layout 'speech stream-test' has written."""
    if "keyword_recall" in s:
        delay = "n/a (no detections)" if s.get("median_delay_ms") is None else f"{s['median_delay_ms']:.0f} ms"
        return (
            f"{s['keyword_recall']:.1f}% of keywords recognised, {s.get('keyword_wrong', 0.0):.1f}% wrong, "
            f"{s.get('false_accepts_per_hour', 0.0):.1f} false accepts/hour on other words, "
            f"{s.get('false_alarms_per_hour', 0.0):.1f} false alarms/hour on noise, median delay {delay}"
        )
    delay = "n/a (no detections)" if s.get("median_delay_ms") is None else f"{s['median_delay_ms']:.0f} ms"
    return (
        f"{s['correct']:.1f}% correct, {s['wrong']:.1f}% wrong, {s['false_positive']:.1f}% false "
        f"positives, {s['false_alarms_per_hour']:.1f} false alarms/hour, median delay {delay}"
    )


def next_steps(result: QuickstartResult) -> str:
    syn = result.synthetic
    lines = [
        "",
        f"Quickstart finished in {result.seconds / 60:.1f} min. Everything is in {result.out}/:",
        f"  checkpoint      {result.checkpoint}",
        f"  ONNX model      {result.onnx}",
        f"  accuracy        {syn.accuracy:.1%} on held-out synthetic voices ({syn.clips} clips of {syn.speakers} "
        f"voices, the {syn.partition} split, none trained on)",
    ]
    if result.real is not None:
        real = result.real
        lines.append(
            f"                  {real.accuracy:.1%} on real speakers ({real.clips} clips of {real.speakers} speakers "
            f"in {real.root})"
        )
    lines += [
        f"  streaming test  {_stream_line(result.stream)} (held-out synthetic voices)",
        "",
        "Next:",
        f"  speech live {result.onnx}                      # talk to it (microphone)",
        f"  speech live {result.onnx} --wav some.wav       # or feed a recording",
        "  speech data download --version v0.02 --root data  # the real data set (2.3 GB)",
        "  speech train --config configs/default.yaml --data.root data/speech_commands_v0.02",
        "  speech synth --words WORD1,WORD2 --out data/mine # your own keywords (see README)",
    ]
    return "\n".join(lines)
