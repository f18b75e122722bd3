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

log = logging.getLogger(__name__)

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
CONFIGS = Path(speech.__file__).resolve().parents[1] / "configs"
SHARED_REAL = Path(speech.__file__).resolve().parents[2] / "shared" / "data" / "sc-v2-test-fit"


@dataclass
class QuickstartResult:
    out: Path
    checkpoint: Path
    onnx: Path
    synthetic_accuracy: float
    real_accuracy: float | None
    stream: dict
    seconds: float


def run(cmd: list[str]) -> None:
    log.info("$ speech %s", " ".join(cmd))
    code = speech_main(cmd)
    if code:
        raise RuntimeError(f"'speech {' '.join(cmd)}' failed with exit code {code}")


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
    if not (synth / "synth.json").is_file():
        run(["synth", "--words", ",".join(KEYWORDS), "--per-word", str(per_word), "--seed", str(seed),
             "--out", str(synth), "--no-progress"])
    else:
        log.info("reusing the synthetic data set in %s", synth)
    runs = out / "runs"
    run(["train", "--config", str(CONFIGS / "quickstart.yaml"), "--data.root", str(synth),
         "--data.cache_dir", str(out / "cache"), "--trainer.default_root_dir", str(runs),
         "--trainer.max_epochs", str(epochs), "--seed_everything", str(seed)])
    run_dir = newest_run(runs / "quickstart")
    (best,) = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    reports = run_dir / "reports"
    run(["evaluate", str(best), "--data", str(synth), "--split", "test", "--cache-dir", str(out / "cache"),
         "--out", str(reports / "synthetic-test"), "--json", str(reports / "synthetic-test.json")])
    synthetic_accuracy = json.loads((reports / "synthetic-test.json").read_text())["accuracy"]
    real_accuracy = None
    if real_data is not None and Path(real_data).is_dir():
        run(["evaluate", str(best), "--data", str(real_data), "--split", "test", "--cache-dir", str(out / "cache"),
             "--out", str(reports / "real-test"), "--json", str(reports / "real-test.json")])
        real_accuracy = json.loads((reports / "real-test.json").read_text())["accuracy"]
    onnx = run_dir / "model.onnx"
    run(["export", str(best), "--onnx", str(onnx)])
    run(["stream-test", str(onnx), "--data", str(synth), "--split", "test", "--minutes", str(stream_minutes),
         "--seed", str(seed), "--out", str(reports / "stream-test"), "--json", str(reports / "stream-test.json")])
    stream = json.loads((reports / "stream-test.json").read_text())
    return QuickstartResult(out, best, onnx, synthetic_accuracy, real_accuracy, stream, time.perf_counter() - start)


def next_steps(result: QuickstartResult) -> str:
    lines = [
        "",
        f"Quickstart finished in {result.seconds / 60:.1f} min. Everything is in {result.out}/:",
        f"  checkpoint      {result.checkpoint}",
        f"  ONNX model      {result.onnx}",
        f"  accuracy        {result.synthetic_accuracy:.1%} on held-out synthetic voices",
    ]
    if result.real_accuracy is not None:
        lines.append(f"                  {result.real_accuracy:.1%} on real speakers (../shared/data/sc-v2-test-fit)")
    s = result.stream
    delay = "n/a (no detections)" if s.get("median_delay_ms") is None else f"{s['median_delay_ms']:.0f} ms"
    lines += [
        f"  streaming test  {s['correct']:.1f}% correct, {s['wrong']:.1f}% wrong, {s['false_positive']:.1f}% false "
        f"positives, {s['false_alarms_per_hour']:.1f} false alarms/hour, median delay {delay}",
        "",
        "Next:",
        f"  speech live {result.onnx}                      # talk to it (microphone)",
        f"  speech live {result.onnx} --wav some.wav       # or feed a recording",
        "  speech data download --version v0.02 --root data  # the real data set (2.3 GB)",
        "  speech train --config configs/default.yaml --data.root data/speech_commands_v0.02",
        "  speech synth --words WORD1,WORD2 --out data/mine # your own keywords (see README)",
    ]
    return "\n".join(lines)
