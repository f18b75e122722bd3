"""``speech live``: keyword spotting on a microphone, a WAV file or raw PCM on stdin.

Without a model argument it runs the packaged model (``commands``, :mod:`speech.models`); the banner names it.

Exit codes: 0 done; 2 bad input (an unreadable model file, a name that is no packaged model and no file, a missing,
broken or truncated --wav file, an option out of range); 1 a failure while running (no input device, PortAudio
missing, a device lost mid-stream, a packaged model missing or damaged); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from speech.cli.threads import add_threads_argument, apply_threads, limit_blas_threads, resolve_threads
from speech.errors import SettingError
from speech.streaming.detection import DetectorConfig
from speech.streaming.engine import StreamingConfig
from speech.streaming.stateful import DEFAULT_STATES

# the flag a user changes when the library blames one of its parameters (``exc.param``)
FLAG_HINTS = {"threads": "--threads", "rate": "--rate / --channels", "wav": "--wav"}


def number_or_off(text: str | float | None, accept, expected: str) -> float | None:
    """An option's value: a number that ``accept`` allows, or ``off`` (None); parsed values pass through (jsonargparse
    checks them again)."""
    if text is None or isinstance(text, int | float):
        return text
    if text.lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not accept(value):  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    return value


def quick_value(text: str | float | None) -> float | None:
    """``--quick-ms`` parser: a window in ms (> 0), or ``off``."""
    return number_or_off(text, lambda v: v > 0.0, "a window in ms (> 0), or 'off'")


def talk_value(text: str | float | None) -> float | None:
    """``--talk-before`` parser: a probability in [0, 1], or ``off``."""
    return number_or_off(text, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1], or 'off'")


def gate_value(text: str | float | None) -> float | None:
    """``--gate-db`` parser: a level in dBFS, or ``off``."""
    return number_or_off(text, lambda v: v <= 0.0, "a level in dBFS, at most 0 (e.g. -45), or 'off'")


def add_stream_arguments(parser: argparse.ArgumentParser, threads: int | str = "auto") -> None:
    """Engine and detector options shared by ``live``, ``stream-test`` and ``calibrate`` (``threads``: the
    default of ``--threads``)."""
    g = parser.add_argument_group("recognition")
    g.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="model runtime; auto picks by file suffix (.onnx -> ONNX Runtime)")
    g.add_argument("--hop-ms", type=float, default=100.0,
                   help="run the classifier every HOP ms (multiple of 10, default 100)")
    g.add_argument("--threshold", type=probability, default=None,
                   help="averaged score a word needs, the same for every keyword (default: the model's calibrated "
                   "per-keyword thresholds, else 0.7)")
    d = DetectorConfig
    g.add_argument("--average-ms", type=float, default=d.average_window_ms,
                   help=f"score averaging window in ms ({d.average_window_ms:g})")
    g.add_argument("--quick-ms", type=quick_value, default=d.quick_average_ms, metavar="MS",
                   help="two speeds: a keyword whose average over this shorter window is above --quick-threshold wins "
                   f"at once, others wait for the --average-ms one (ms, or 'off'; default {d.quick_average_ms:g})")
    g.add_argument("--quick-threshold", type=probability, default=d.quick_threshold,
                   help=f"the quick average's level (default {d.quick_threshold:g}; never below a keyword's threshold)")
    g.add_argument("--keyword-share", type=share_value, default=AUTO,
                   help="a window whose top keyword holds at least this share of the keywords' summed score gives it "
                   f"the whole sum (0.5-1, or 'off'; default: the model's calibrated setting, else "
                   f"{share_text(DetectorConfig.keyword_share)})")
    g.add_argument("--talk-before", type=talk_value, default=d.talk_before, metavar="P",
                   help="ignore a keyword heard amid talk: when every window of the 1.5 s ending "
                   f"{d.talk_before_ms:g} ms before it scored _unknown_ above P (0-1, or 'off'; default "
                   f"{share_text(d.talk_before)})")
    g.add_argument("--suppression-ms", type=float, default=500.0, help="quiet time after a detection in ms (500)")
    g.add_argument("--min-count", type=int, default=3, help="results needed in the averaging window (3)")
    g.add_argument("--gate-db", type=gate_value, default=-45.0,
                   help="windows whose loudest 32 ms frame is below this RMS level (dBFS) count as silence; 'off' disables (-45)")
    g.add_argument("--stateful", action="store_true",
                   help="run a unidirectional model in its stream mode: each hop feeds only its new frames and carries "
                   "the recurrent state, instead of re-running the window (docs/recurrent-cells.md)")
    g.add_argument("--stream-states", type=int, default=DEFAULT_STATES, metavar="N",
                   help="with --stateful: staggered states, each restarted once a window has passed; a hop is scored by "
                   f"the oldest (1 to window / hop; 0: one state never restarted; default {DEFAULT_STATES})")
    g.add_argument("--flush-ms", type=float, default=1000.0,
                   help="silence fed after the end of a file or stdin, so that its last word is decided (1000)")
    add_threads_argument(g, "the model", default=threads)


AUTO = "auto"  # --keyword-share not given: the model's calibrated setting, else the detector's default


def share_text(share: float | None) -> str:
    return "off" if share is None else f"{share:g}"


def share_value(text: str | float | None) -> float | str | None:
    """``--keyword-share`` parser: a share in [0.5, 1], or ``off`` (None); ``auto`` is the default."""
    if text == AUTO:
        return text
    return number_or_off(text, lambda v: 0.5 <= v <= 1.0, "a share in [0.5, 1] or 'off'")


def keyword_share(args: argparse.Namespace, metadata: dict | None) -> None:
    """Refuse a ``--keyword-share`` that the model's calibrated thresholds were not fitted with (they are used
    unless ``--threshold`` is given): a :class:`~speech.errors.SettingError`."""
    from speech.streaming.thresholds import check_keyword_share

    if args.keyword_share == AUTO:
        return
    try:
        check_keyword_share(metadata, args.keyword_share, args.threshold)
    except ValueError as exc:
        raise SettingError(f"--keyword-share {share_text(args.keyword_share)}: {exc}") from None


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
    calibrated thresholds. Settings the engine refuses are bad input (:class:`~speech.errors.SettingError`)."""
    base = DetectorConfig()
    threshold = base.threshold if args.threshold is None else args.threshold
    if args.quick_ms is not None and args.quick_ms >= args.average_ms:
        raise SettingError(f"--quick-ms {args.quick_ms:g} must be shorter than --average-ms {args.average_ms:g} "
                           "(or give --quick-ms off)")
    release = None if base.release is None else min(base.release, threshold)
    try:
        return StreamingConfig(
            hop_ms=args.hop_ms,
            gate_db=args.gate_db,
            flush_ms=args.flush_ms,
            stateful=args.stateful,
            stream_states=args.stream_states,
            detector=DetectorConfig(
                average_window_ms=args.average_ms,
                quick_average_ms=args.quick_ms,
                quick_threshold=args.quick_threshold,
                talk_before=args.talk_before,
                threshold=threshold,
                suppression_ms=args.suppression_ms,
                minimum_count=args.min_count,
                release=release,
                **({} if args.keyword_share == AUTO else {"keyword_share": args.keyword_share}),
            ),
        )
    except ValueError as exc:  # the engine's own checks of these option values
        raise SettingError(str(exc)) from None


def check_engine(scorer, config: StreamingConfig, input_rate: int = 16_000):
    """The streaming engine for ``scorer`` with the options' ``config``; settings it refuses for this model (a hop
    that is no multiple of its frame hop, ...) are bad input. Returns the engine."""
    from speech.streaming.engine import StreamingRecogniser

    try:
        return StreamingRecogniser(scorer, config, input_rate=input_rate)
    except ValueError as exc:  # the engine's checks of the option values against the model
        raise SettingError(str(exc)) from None


MODEL_HELP = ("a model: a trained checkpoint (.ckpt), an exported model (.onnx) or the name of a packaged model "
              "(commands); a path always wins over a name")


def describe_model_argument(parser: argparse.ArgumentParser, help_text: str = MODEL_HELP) -> None:
    """Give the MODEL positional of a command that shares its options (``stream-test``, ``calibrate``) the help
    that says it takes a packaged name too."""
    for action in parser._actions:
        if action.dest == "model":
            action.help = help_text


def open_model(model: str | None, backend: str, threads: int | str | None = 1):
    """Open the model ``model`` names (a path, a packaged name, None: the default packaged model; the one rule of
    :func:`speech.models.resolve_model`) with ``threads`` CPU threads (``--threads``): ``(scorer, choice)``. A file
    given by path that cannot be used is bad input naming it; a packaged model that is missing or damaged is a
    failure (exit 1). An ``.onnx`` model needs only the base install (torch is not imported for it); a checkpoint
    needs the training extra."""
    from speech.models import open_model as open_named

    threads = resolve_threads(threads)
    scorer, choice = open_named(model, backend, threads)
    if scorer.backend == "torch":
        apply_threads(threads)
    else:  # torch is not loaded for an .onnx model: only NumPy's BLAS threads to set
        limit_blas_threads(threads)
    return scorer, choice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help=f"{MODEL_HELP}; default: commands, the packaged model (docs/model-card.md)")
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
    out.add_argument("--seconds", type=positive_seconds, help="stop after this many seconds of audio (> 0)")
    out.add_argument("--keywords", type=keyword_list, metavar="WORD,WORD",
                     help="report only these keywords (default: every keyword of the model); the others are still "
                     "heard, so one of them said is not taken for a listed one")
    add_stream_arguments(parser, threads=1)  # one 1 s window per hop: a second thread only adds latency jitter


def keyword_list(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """``--keywords`` parser: comma-separated labels, at least one (a parsed value passes as it is)."""
    if isinstance(text, tuple):
        return text
    words = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    if not words:
        raise argparse.ArgumentTypeError(f"expected comma-separated keywords, e.g. stop,go; got {text!r}")
    return words


def positive_seconds(text: str | float) -> float:
    """``--seconds`` parser: a number of seconds above 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def make_source(args: argparse.Namespace):
    from speech.streaming.sources import MicrophoneSource, SourceError, StdinSource, WavSource

    if args.wav is not None and args.stdin:
        raise SettingError("choose one input: --wav FILE or --stdin")
    if args.wav is not None:
        return WavSource(args.wav, realtime=args.realtime)
    if args.stdin:
        if not args.rate:
            raise SettingError("--stdin needs --rate R (the sample rate of the PCM on stdin)")
        return StdinSource(args.rate, args.channels)
    try:
        return MicrophoneSource(args.device)
    except SourceError as exc:
        raise SourceError(f"{exc} (--wav FILE, or --stdin --rate HZ)") from None


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
    # Ctrl-C must stop the demo even when it was started from a context that ignores SIGINT (a background job
    # of a non-interactive shell inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from speech.api import Model
    from speech.audio.io import AudioError
    from speech.cli.display import JsonLines, LiveDisplay
    from speech.streaming.sources import MicrophoneSource, SourceError
    from speech.streaming.thresholds import resolve_detector

    if args.list_devices:
        return print_devices()
    if args.realtime and args.wav is None:
        raise SettingError("--realtime only applies to --wav")
    scorer, choice = open_model(args.model, args.backend, args.threads)  # a name that is none: said before the input
    source = make_source(args)
    from speech.data.labels import rejection_warning

    if warning := rejection_warning(scorer.labels):
        print(f"speech live: warning: {warning}", file=sys.stderr)
    keyword_share(args, scorer.metadata)
    base = stream_config(args)
    _, threshold_source, mismatch = resolve_detector(scorer.metadata, base, args.threshold)  # what the banner says
    try:  # the engine speech.Model gives every caller: the same thresholds, resolved there
        engine = Model(scorer).streamer(source.rate, args.threshold, base, keywords=args.keywords)
    except ValueError as exc:  # the engine's checks of the option values against the model
        raise SettingError(str(exc)) from None
    config = engine.config
    limit = args.seconds
    view = JsonLines() if args.json else LiveDisplay(scorer.labels, source.name)
    print(
        f"speech live: {choice.describe()}; {source.name}, {source.rate} Hz, {source.channels} ch -> 16 kHz; "
        f"hop {args.hop_ms:g} ms; listening for {config.detector.keyword_text}; thresholds: {threshold_source}; "
        f"keyword share {share_text(config.detector.keyword_share)}; "
        f"keywords amid talk {'reported' if config.detector.talk_before is None else 'ignored'} "
        f"(--talk-before {share_text(config.detector.talk_before)}); "
        + ("Ctrl-C to stop" if isinstance(source, MicrophoneSource) else "reading"),
        file=sys.stderr,
        flush=True,
    )
    for line in mismatch:
        print(f"speech live: warning: the thresholds were calibrated with other settings: {line}", file=sys.stderr)
    error = None
    # with --json, one line on stderr once the microphone delivers audio: whoever plays into it knows it is heard
    announce = args.json and isinstance(source, MicrophoneSource)
    with view:
        why = "interrupted (Ctrl-C)"
        try:
            for chunk in source:
                if announce:
                    print(f"speech live: capture started on {source.name}", file=sys.stderr, flush=True)
                    announce = False
                found = engine.feed(chunk)
                view.update(engine.last_chunk_db, engine.last, engine.time, found)
                if limit is not None and engine.time >= limit:
                    why = f"stopped at --seconds {limit:g}"
                    break
            else:
                view.update(engine.last_chunk_db, engine.last, engine.time, engine.finish())
                why = "end of file" if args.wav is not None else "end of input"
        except (SourceError, AudioError) as exc:
            error, why = exc, "stopped by an error"
        finally:  # the whole run, also after Ctrl-C or an error: the length is of the audio read, not the flush
            view.end(engine.input_samples / engine.input_rate, why)
    if error is not None:
        if isinstance(error, AudioError):  # bad samples: the engine names the time, not the source
            print(f"speech live: error: {source.name}: {error}", file=sys.stderr)
        else:
            print(f"speech live: error: {error} (after {engine.time:.1f} s of audio)", file=sys.stderr)
        return error.exit_code  # 1 for a device lost, 2 for a file whose audio data is damaged or bad samples
    return 0
