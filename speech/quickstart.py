"""The offline quickstart: synthesise a 12-label set, train, evaluate, export, stream-test, in one go.

Each step calls the library function the matching ``speech`` command calls (:func:`speech.synth.synthesize_dataset`,
:func:`speech.evaluation.evaluate_model` with :func:`speech.evaluation.report.write_report`, :func:`speech.runtime.export.export_onnx`,
:func:`speech.evaluation.streams.testing.run_stream_test`); training is :func:`speech.train` with the
``configs/quickstart.yaml`` recipe.
Everything goes below one output folder; a second run reuses the synthetic data and trains a new run version
(nothing is overwritten). :func:`next_steps` is the summary the command prints.

With the real clips of ``../shared/data/sc-v2-test-fit`` at hand, it ends with the packaged model (``commands``,
:mod:`speech.models`, trained on real speakers) beside the synthetic one, both scored on the same real clips: the
packaged model's own test part of that folder (from its record), which neither model trained on.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import speech
from speech.data.labels import COMMAND_WORDS_10
from speech.errors import RuntimeFailure
from speech.utils.timing import Stopwatch

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
    real: HeldOut | None  # the synthetic model on real clips (the packaged model's test part when it could be scored)
    stream: dict
    seconds: float
    packaged: HeldOut | None = None  # the packaged model on the same real clips as ``real``
    packaged_card: dict | None = None  # its card's figures (speech/models/commands.json)

    @property
    def synthetic_accuracy(self) -> float:
        return self.synthetic.accuracy

    @property
    def real_accuracy(self) -> float | None:
        return None if self.real is None else self.real.accuracy


def _manifest(folder: Path) -> dict:
    """The folder's synth.json ({} when there is none or it is unreadable)."""
    from speech.synth import read_manifest

    try:
        return read_manifest(folder) or {}
    except ValueError:
        return {}


def quickstart(
    out: str | Path = "quickstart",
    per_word: int = 120,
    epochs: int = 12,
    stream_minutes: float = 3.0,
    seed: int = 0,
    real_data: str | Path | None = SHARED_REAL,
) -> QuickstartResult:
    """Run the whole pipeline offline below ``out``; returns the figures :func:`next_steps` prints.

    ``per_word``: synthetic clips per keyword; ``epochs``: training epochs; ``stream_minutes``: length of each
    test stream; ``seed``: synthesis, training and the streams; ``real_data``: a folder of real clips also
    evaluated when it exists; each step is logged (:mod:`logging`, logger ``speech.quickstart``). PyTorch's
    threads are left as they are (``speech quickstart --threads`` sets them first).
    """
    from speech.evaluation.streams.build import StreamSpec
    from speech.evaluation.streams.experiment import StreamExperiment
    from speech.evaluation.streams.source import SourceOptions
    from speech.evaluation.streams.testing import run_stream_test
    from speech.runtime.export import export_onnx
    from speech.streaming.engine import StreamingConfig
    from speech.synth import synthesize_dataset
    from speech.training.train import train

    say = log.info
    watch = Stopwatch().start()
    out = Path(out)
    synth = out / "synth-12"
    manifest = _manifest(synth)
    # complete: a finished run (older synth versions wrote the manifest only at the end, without "complete")
    if manifest.get("complete", bool(manifest.get("counts"))):
        say(f"reusing the synthetic data set in {synth}")
    else:  # new, or cut short earlier: overwrite replaces only what that run wrote
        say(f"synthesising {per_word} clips per keyword into {synth}")
        made = synthesize_dataset(synth, COMMAND_WORDS_10, per_word=per_word, seed=seed, overwrite=bool(manifest),
                                  progress=False)
        say(f"synthesised {made.clips} clips of {made.speakers} voices in {made.seconds:.0f} s")
    runs = out / "runs"
    say(f"training for {epochs} epoch(s) into {runs}")
    run_dir = train(CONFIGS / "quickstart.yaml", {"data.root": synth, "data.cache_dir": out / "cache",
                    "trainer.default_root_dir": runs, "trainer.max_epochs": epochs, "seed_everything": seed,
                    "trainer.enable_model_summary": False})  # the demo's log: steps, not Lightning's layer table
    (best,) = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    say(f"trained into {run_dir}; best checkpoint {best.name}")
    reports = run_dir / "reports"
    # The checkpoint's record of its training split picks the held-out partition of the synthetic set (its
    # voices were never trained on), exactly as 'speech evaluate' does for a user.
    synthetic = evaluate_held_out(best, synth, reports / "synthetic-test", out / "cache", "synthetic")
    say(f"synthetic held-out accuracy {synthetic.accuracy:.1%}; report in {reports / 'synthetic-test'}")
    real = packaged = card = None
    if real_data is not None and Path(real_data).is_dir():
        packaged_model, split = packaged_split(Path(real_data))  # the packaged model's test part of the folder
        real = evaluate_held_out(best, Path(real_data), reports / "real-test", out / "cache", "real", split)
        real.root = str(real_data)  # as given, not resolved: what the user typed (or the relative default)
        say(f"real-speaker accuracy {real.accuracy:.1%}; report in {reports / 'real-test'}")
        if packaged_model is not None:
            packaged = evaluate_held_out(packaged_model, Path(real_data), reports / "packaged-real-test",
                                         out / "cache", "packaged model's real", split)
            packaged.root = str(real_data)
            card = _card()
            say(f"packaged model's accuracy on the same clips {packaged.accuracy:.1%}; report in "
                f"{reports / 'packaged-real-test'}")
    onnx = export_onnx(best, run_dir / "model.onnx")
    say(f"exported {onnx}")
    scorer = _scorer(onnx)
    experiment = StreamExperiment(scorer, onnx, StreamingConfig(), SourceOptions(synth, _held_out_split(scorer, synth)),
                                  StreamSpec(minutes=stream_minutes, seed=seed))
    stream = run_stream_test(experiment, out_dir=reports / "stream-test", json_path=reports / "stream-test.json").figures
    return QuickstartResult(out, best, onnx, synthetic, real, stream, watch.elapsed, packaged, card)


def packaged_split(root: Path):
    """``(packaged model file, split)``: the default packaged model and its own held-out part of ``root`` when it
    recorded ``root`` as one of its training folders; else ``(None, None)`` (the synthetic model then scores
    ``root`` as it always did: its own record's choice, every clip of a folder it never saw)."""
    from speech.data.record import DataRecord, choose_split
    from speech.errors import SpeechError
    from speech.models import resolve_model

    try:
        choice = resolve_model(None)
        record = DataRecord.from_dict(_scorer(choice.path).metadata.get("data"))
    except SpeechError as exc:  # a damaged installation: the quickstart's own pipeline still runs
        log.warning("the packaged model is not compared: %s", exc)
        return None, None
    if record is None or record.folder(root) is None:
        return None, None
    return choice.path, choose_split(record, root)


def _card() -> dict | None:
    from speech.errors import SpeechError
    from speech.models import read_card

    try:
        return read_card()
    except SpeechError:
        return None


def _scorer(path: Path):
    from speech.runtime.scorers import load_scorer

    return load_scorer(path, intra_op_threads=1)


def _held_out_split(scorer, root: Path):
    """The split the model's record gives for ``root``: its own held-out partition when it trained on ``root``,
    else the defaults (as the commands do when no split option is given)."""
    from speech.data.record import DataRecord, choose_split

    return choose_split(DataRecord.from_dict(scorer.metadata.get("data")), root)


def evaluate_held_out(checkpoint: Path, root: Path, report_dir: Path, cache_dir: Path, what: str,
                      split=None) -> HeldOut:
    """Evaluate ``checkpoint`` on the held-out split of ``root`` (``split``, a
    :class:`~speech.data.record.SplitChoice`; default: the one its own record gives): the report folder
    ``report_dir`` and its JSON figures next to it (``<report_dir>.json``), as ``speech evaluate --out --json``
    writes them. Clips of its training speakers are refused."""
    from speech.evaluation import evaluate_model
    from speech.evaluation.report import report_json, write_report
    from speech.utils.files import write_json

    scorer = _scorer(checkpoint)
    evaluation = evaluate_model(scorer, checkpoint, root, split or _held_out_split(scorer, root), cache_dir=cache_dir)
    report = report_json([evaluation])
    write_report([evaluation], report_dir)
    write_json(report_dir.with_suffix(".json"), report)
    return held_out(report, what)


def held_out(report: dict, what: str) -> HeldOut:
    """The figures of one 'speech evaluate' JSON report; refuses one that scored clips of training speakers."""
    data = report["data"]
    if data.get("clips_of_training_speakers"):
        raise RuntimeFailure(f"the {what} evaluation scored {data['clips_of_training_speakers']} clips of training speakers")
    return HeldOut(float(report["accuracy"]), int(data["clips"]), int(data.get("speakers", 0)), data["split"],
                   str(data["root"]), data.get("split_settings", {}).get("source", "defaults"))


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it (``configs/default.yaml`` in the checkout),
    else absolute: a config path that works from where the quickstart ran."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative


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


def next_steps(result: QuickstartResult, program: str = "speech") -> str:
    """The closing summary; every path as it was given, and shell-quoted in the commands, which call ``program``
    (how ``speech`` runs from here, e.g. ``.venv/bin/speech``: :func:`speech.cli.program.program`)."""
    q = shlex.quote
    s = program
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
    lines.append(f"  streaming test  {_stream_line(result.stream)} (held-out synthetic voices)")
    if result.packaged is not None:
        lines += [
            f"  packaged model  {result.packaged.accuracy:.1%} on the same real clips (its {result.packaged.partition} "
            f"part of {result.packaged.root}: speakers neither model trained on), against {result.real.accuracy:.1%}",
        ]
        if card_line := _card_line(result.packaged_card):
            lines.append(f"                  {card_line}")
    has_packaged = _packaged_is_there()
    lines += [
        "",
        "Next:",
        *([f"  {s} live                                      # talk to the packaged model (microphone; "
           "docs/model-card.md)"] if has_packaged else []),
        f"  {s} live {q(str(result.onnx))}                      # talk to the synthetic one (microphone)",
        f"  {s} live {q(str(result.onnx))} --wav some.wav       # or feed a recording",
        f"  {s} data download --version v0.02 --root data  # the real data set (2.3 GB)",
        f"  {s} train --config {q(str(_shown(CONFIGS / 'default.yaml')))} --data.root data/speech_commands_v0.02",
        f"  {s} synth --words WORD1,WORD2 --out data/mine # your own keywords (see README)",
    ]
    return "\n".join(lines)


def _packaged_is_there() -> bool:
    from speech.models import DEFAULT_MODEL, packaged_path

    return packaged_path(DEFAULT_MODEL).is_file()


def _card_line(card: dict | None) -> str | None:
    """The packaged model's streaming figures from its card (``speech/models/commands.json``), or None."""
    try:
        stream = card["figures"]["streams"]["sc-v2-test-fit"]
        running = stream["running_speech"]["false_accepts_per_hour"]
        return (f"its card: {stream['recall']:.1f}% of keywords recognised, {stream['wrong']:.1f}% wrong, "
                f"{running:.1f} false accepts/hour of running speech, median delay {stream['median_delay_ms']:.0f} ms "
                "(test speakers and readers; docs/model-card.md)")
    except (KeyError, TypeError):
        return None
