"""``speech live``: keyword spotting on a microphone, a WAV file or raw PCM on stdin.

Exit codes: 0 done, 1 error (no device, PortAudio missing, device lost, unreadable model), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from speech.streaming.detection import DetectorConfig
from speech.streaming.engine import StreamingConfig


def gate_value(text: str | float | None) -> float | None:
    """``--gate-db`` parser: a level in dBFS, or ``off``."""
    if text is None or isinstance(text, int | float):  # already parsed (jsonargparse checks it again)
        return text
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level in dBFS (e.g. -45) or 'off', got {text!r}") from None


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """Engine and detector options shared by ``live`` and ``stream-test``."""
    g = parser.add_argument_group("recognition")
    g.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="model runtime; auto picks by file suffix (.onnx -> ONNX Runtime)")
    g.add_argument("--hop-ms", type=float, default=100.0,
                   help="run the classifier every HOP ms (multiple of 10, default 100)")
    g.add_argument("--threshold", type=probability, default=None,
                   help="averaged score a word needs, the same for every keyword (default: the model's calibrated "
                   "per-keyword thresholds, else 0.7)")
    g.add_argument("--average-ms", type=float, default=500.0, help="score averaging window in ms (500)")
    g.add_argument("--suppression-ms", type=float, default=500.0, help="quiet time after a detection in ms (500)")
    g.add_argument("--min-count", type=int, default=3, help="results needed in the averaging window (3)")
    g.add_argument("--gate-db", type=gate_value, default=-45.0,
                   help="windows whose loudest 32 ms frame is below this RMS level (dBFS) count as silence; 'off' disables (-45)")
    g.add_argument("--flush-ms", type=float, default=1000.0,
                   help="silence fed after the end of a file or stdin, so that its last word is decided (1000)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for the model (1)")


def probability(text: str) -> float:
    """``--threshold`` parser: a probability in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


def stream_config(args: argparse.Namespace) -> StreamingConfig:
    """Engine and detector settings from the options. The detector's threshold is ``--threshold`` when given,
    else the default; :func:`speech.streaming.thresholds.detector_from_metadata` then puts in a model's
    calibrated thresholds."""
    base = DetectorConfig()
    threshold = base.threshold if args.threshold is None else args.threshold
    release = None if base.release is None else min(base.release, threshold)
    return StreamingConfig(
        hop_ms=args.hop_ms,
        gate_db=args.gate_db,
        flush_ms=args.flush_ms,
        detector=DetectorConfig(
            average_window_ms=args.average_ms,
            threshold=threshold,
            suppression_ms=args.suppression_ms,
            minimum_count=args.min_count,
            release=release,
        ),
    )


def open_scorer(path: str, backend: str, threads: int = 1):
    """Load a checkpoint / ONNX model; errors become :class:`ModelError` with a one-line message. An ``.onnx``
    model needs only the base install; a checkpoint needs the training extra (torch)."""
    from speech.extras import MissingExtraError
    from speech.scorers import load_scorer

    if not Path(path).is_file():
        raise ModelError(f"{path}: no such model file (expected a .ckpt checkpoint or an .onnx export)")
    try:
        scorer = load_scorer(path, backend=backend, intra_op_threads=max(1, threads))
    except MissingExtraError as exc:
        raise ModelError(str(exc)) from None
    except (ValueError, OSError, RuntimeError, KeyError) as exc:  # CheckpointError, OnnxModelError: ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load the model ({first})") from None
    if scorer.backend == "torch":
        import torch

        torch.set_num_threads(max(1, threads))
    return scorer


class ModelError(RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="trained checkpoint (.ckpt) or exported model (.onnx)")
    src = parser.add_argument_group("input (default: the system's default microphone)")
    src.add_argument("--device", help="microphone: device index or (part of its) name; see --list-devices")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--wav", type=Path, help="read a sound file instead of the microphone")
    src.add_argument("--realtime", action="store_true", help="with --wav: pace the file in real time")
    src.add_argument("--stdin", action="store_true", help="read raw PCM s16le from stdin (needs --rate)")
    src.add_argument("--rate", type=int, help="with --stdin: sample rate in Hz")
    src.add_argument("--channels", type=int, default=1, help="with --stdin: interleaved channels (1)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object per detection ({label, score, time}) instead of the live panel")
    out.add_argument("--seconds", type=float, help="stop after this many seconds of audio")
    add_stream_arguments(parser)


def make_source(args: argparse.Namespace):
    from speech.streaming.sources import MicrophoneSource, StdinSource, WavSource

    if args.wav is not None and args.stdin:
        raise UsageError("choose one input: --wav FILE or --stdin")
    if args.wav is not None:
        return WavSource(args.wav, realtime=args.realtime)
    if args.stdin:
        if not args.rate:
            raise UsageError("--stdin needs --rate R (the sample rate of the PCM on stdin)")
        return StdinSource(args.rate, args.channels)
    return MicrophoneSource(args.device)


class UsageError(ValueError):
    pass


def print_devices() -> int:
    from speech.streaming.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no input devices found")
        return 1
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['rate']:g} Hz)")
    return 0


def run(args: argparse.Namespace) -> int:
    from speech.streaming.sources import SourceError

    # Ctrl-C must stop the demo even when it was started from a context that ignores SIGINT (a background job
    # of a non-interactive shell inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("speech live: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"speech live: {exc}", file=sys.stderr)
        return 2
    except ModelError as exc:  # an unreadable model file is bad input
        print(f"speech live: error: {exc}", file=sys.stderr)
        return 2
    except SourceError as exc:
        hint = " (--wav FILE, or --stdin --rate HZ)" if args.wav is None and not args.stdin else ""
        print(f"speech live: error: {exc}{hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `speech live --json ... | head -1`
        sys.stderr.close()
        return 0


def _run(args: argparse.Namespace) -> int:
    from speech.cli.display import JsonLines, LiveDisplay
    from speech.streaming.engine import StreamingRecogniser
    from speech.streaming.sources import MicrophoneSource, SourceError
    from speech.streaming.thresholds import detector_from_metadata, settings_mismatch

    if args.list_devices:
        return print_devices()
    if not args.model:
        raise UsageError("give a model file (.ckpt or .onnx), or --list-devices")
    if args.realtime and args.wav is None:
        raise UsageError("--realtime only applies to --wav")
    source = make_source(args)
    scorer = open_scorer(args.model, args.backend, args.threads)
    from speech.data.labels import rejection_warning

    if warning := rejection_warning(scorer.labels):
        print(f"speech live: warning: {warning}", file=sys.stderr)
    try:
        config = stream_config(args)
        config.detector, threshold_source = detector_from_metadata(scorer.metadata, config.detector, args.threshold)
        engine = StreamingRecogniser(scorer, config, input_rate=source.rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    mismatch = settings_mismatch(scorer.metadata, config) if args.threshold is None else []
    limit = args.seconds
    view = JsonLines() if args.json else LiveDisplay(scorer.labels, source.name)
    print(
        f"speech live: {source.name}, {source.rate} Hz, {source.channels} ch -> 16 kHz; "
        f"hop {args.hop_ms:g} ms; thresholds: {threshold_source}; "
        + ("Ctrl-C to stop" if isinstance(source, MicrophoneSource) else "reading"),
        file=sys.stderr,
        flush=True,
    )
    for line in mismatch:
        print(f"speech live: warning: the thresholds were calibrated with other settings: {line}", file=sys.stderr)
    error = None
    with view:
        try:
            for chunk in source:
                found = engine.feed(chunk)
                view.update(engine.last_chunk_db, engine.last, engine.time, found)
                if limit is not None and engine.time >= limit:
                    break
            else:
                view.update(engine.last_chunk_db, engine.last, engine.time, engine.finish())
        except SourceError as exc:
            error = exc
    if error is not None:
        print(f"speech live: error: {error} (after {engine.time:.1f} s of audio)", file=sys.stderr)
        return 1
    return 0
