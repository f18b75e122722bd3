"""Options shared by ``speech stream-test`` and ``speech calibrate``: the data folder and split, the extra
non-keyword speech, how the streams are generated; and the flags a library error's parameter maps to."""

from __future__ import annotations

import argparse
from pathlib import Path

from speech.cli.split_args import add_split_arguments, resolve_split

# library parameter (``exc.param``) -> the flags that set it, shown after the library's message
FLAG_HINTS = {
    "split": "--split / --split-rule / --validation-percent / --testing-percent",
    "minutes": "--minutes / --unknown-minutes / --noise-minutes",
    "json_path": "--json",
    "overwrite": "--json",  # an existing JSON file: these commands never replace one
    "allow_trained_speakers": "--allow-trained-speakers",
    "threads": "--threads",
    "data": "--data",
    "negatives": "--negatives",
}


def add_stream_source_arguments(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """Data, split and stream-generation options shared by ``stream-test`` and ``calibrate``; with ``several``,
    ``--data`` may be given more than once (a list)."""
    parser.add_argument("model", metavar="MODEL", help="trained checkpoint (.ckpt) or exported model (.onnx)")
    if several:
        parser.add_argument("--data", required=True, metavar="DIR", action="append",
                            help="data folder (any layout speech.data reads); repeatable: the same partition of "
                            "each folder (split as the model's record says) joins the keyword streams")
    else:
        parser.add_argument("--data", required=True, type=Path, metavar="DIR",
                            help="data folder (any layout speech.data reads)")
    add_split_arguments(parser)
    parser.add_argument("--allow-trained-speakers", action="store_true",
                        help="build the streams even from clips of speakers the model was trained on (the figures "
                        "are then inflated)")
    parser.add_argument("--negatives", action="append", default=[], metavar="DIR",
                        help="more non-keyword speech for the false-accept stream: the clips of DIR whose word is none "
                        "of the model's labels, of speakers the model never trained on (repeatable)")
    parser.add_argument("--negatives-half", choices=("a", "b", "all"),
                        help="which fixed half of the --negatives speakers (by speaker-id hash) to use; default: a "
                        "for 'calibrate', b for 'stream-test', so the two never share a speaker")
    add_running_arguments(parser)
    s = parser.add_argument_group("streams")
    s.add_argument("--minutes", type=float, default=10.0, help="length of the keyword stream (10)")
    s.add_argument("--unknown-minutes", type=float,
                   help="length of the non-keyword speech stream for false accepts (default: --minutes; 0: none)")
    s.add_argument("--noise-minutes", type=float,
                   help="length of the speech-free noise stream for false alarms (default: --minutes)")
    s.add_argument("--unknown-share", type=float, default=30.0,
                   help="percent of the keyword stream's words that are non-keywords (TF's 30)")
    s.add_argument("--background-volume", type=float, default=0.1, help="noise volume drawn from U(0, V) (0.1)")
    s.add_argument("--stream-seed", "--seed", dest="stream_seed", type=int, default=0,
                   help="random seed of the streams (0)")
    s.add_argument("--late-ms", type=float, default=1000.0,
                   help="a detection belongs to a word up to this long after the word's speech ends (1000)")


def add_running_arguments(parser: argparse.ArgumentParser) -> None:
    """The running-speech stream (issue #18, :mod:`speech.evaluation.streams.running`)."""
    r = parser.add_argument_group("running speech")
    r.add_argument("--running-speech", type=Path, metavar="DIR",
                   help="a LibriSpeech-style folder (<reader>/<chapter>/*.flac|ogg|wav + *.trans.txt): adds a stream of "
                   "its sentences joined with 0.3-1 s pauses; a detection is a false accept when the sentence it "
                   "falls in (span + 1 s) does not say that word")
    r.add_argument("--running-readers", choices=("test", "calibration", "all"),
                   help="which readers of the model's recorded reader split (else the default seeded split) to use; "
                   "default: test for 'stream-test', calibration for 'calibrate'")
    r.add_argument("--running-minutes", type=float, help="at most this many minutes of running speech (default: all)")


def running_options(args: argparse.Namespace, default_part: str):
    """The :class:`~speech.evaluation.streams.running.RunningOptions` of the options (None without --running-speech)."""
    from speech.evaluation.streams.running import RunningOptions

    if getattr(args, "running_speech", None) is None:
        return None
    return RunningOptions(args.running_speech, args.running_readers or default_part, args.running_minutes,
                          seed=args.stream_seed, late_s=args.late_ms / 1000.0,
                          allow_trained_speakers=args.allow_trained_speakers)


def stream_spec(args: argparse.Namespace):
    """The :class:`~speech.evaluation.streams.build.StreamSpec` of the options."""
    from speech.evaluation.streams.build import StreamSpec

    return StreamSpec(minutes=args.minutes, unknown_minutes=args.unknown_minutes, noise_minutes=args.noise_minutes,
                      unknown_share=args.unknown_share, background_volume=args.background_volume,
                      seed=args.stream_seed, late_ms=args.late_ms)


def speaker_split_if_empty(args: argparse.Namespace, scorer, choice, command: str):
    """``choice`` (a command's default partition, no ``--split``), or, for a folder the model never trained on
    whose own split rule leaves that partition empty (an official test set: every clip is a test clip), the same
    partition of a seeded speaker split of it (``--split-rule speaker``, the other split settings as given); the
    note the command prints once its outputs are checked and its work done goes into ``args.split_note``. Left as it
    is when a split rule was given, or the folder is the model's own."""
    from dataclasses import replace

    from speech.data import build_index
    from speech.data.splits import partition_splits
    from speech.errors import SpeechError

    if choice.source != "defaults" or args.split_rule is not None:
        return choice
    try:
        index = build_index(args.data, labels=list(scorer.labels), split=choice.settings)
    except SpeechError:  # the streams' own reading of the folder says what is wrong with it
        return choice
    if any(index.splits[name] for name in partition_splits(choice.partition)):
        return choice
    args.split_note = (f"speech {command}: note: {args.data} has no {choice.partition} clips under its own split "
                       f"rule ({index.split_method}); used the {choice.partition} speakers of a seeded speaker split "
                       "of it (--split-rule speaker; give stream-test the same to score other speakers)")
    return replace(choice, settings=choice.settings.updated(rule="speaker"))


def stream_experiment(args: argparse.Namespace, scorer, config, *, default_partition: str | None = None,
                      default_half: str = "b", default_readers: str = "test", command: str = "stream-test"):
    """The :class:`~speech.evaluation.streams.experiment.StreamExperiment` of the options, for ``scorer`` (loaded
    from ``args.model``) with the engine settings ``config``: the split resolved from the model's record
    (``default_partition`` when no ``--split`` is given, from a speaker split when the folder's own rule leaves
    it empty: :func:`speaker_split_if_empty`), the ``--negatives`` folders and half (default
    ``default_half``), ``--unknown-percent`` (default: the stream test's full layout), the streams and the
    running-speech readers (default ``default_readers``)."""
    from speech.data.record import DataRecord
    from speech.evaluation.streams.experiment import StreamExperiment
    from speech.evaluation.streams.source import STREAM_UNKNOWN_PERCENT, SourceOptions

    choice = resolve_split(args, DataRecord.from_dict(scorer.metadata.get("data")), args.data)
    if default_partition is not None and args.split is None:
        choice.partition = default_partition
        choice = speaker_split_if_empty(args, scorer, choice, command)
    source = SourceOptions(
        args.data,
        choice,
        allow_trained_speakers=args.allow_trained_speakers,
        negatives=tuple(Path(p) for p in args.negatives),
        negatives_half=args.negatives_half or default_half,
        unknown_percent=STREAM_UNKNOWN_PERCENT if args.unknown_percent is None else args.unknown_percent,
    )
    return StreamExperiment(scorer, args.model, config, source, stream_spec(args),
                            running_options(args, default_readers))
