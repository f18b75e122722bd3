"""``speech synth``: write a synthetic keyword data set spoken by espeak-ng (see :mod:`speech.synth`)."""

from __future__ import annotations

import argparse

from speech.cli.progress import ProgressBars
from speech.synth import SynthSummary, synthesize_dataset

# the options a user changes when the library blames one of its parameters (``exc.param``)
FLAG_HINTS = {"out": "--out", "per_word": "--per-word / --silence / --unknown",
              "overwrite": "options: --out, --seed, --overwrite"}


def _word_list(text: str | list[str]) -> list[str]:
    if isinstance(text, list):  # already parsed (jsonargparse checks parsed values with the type again)
        return text
    words = [part.strip() for part in text.split(",")]
    if not words or any(not w for w in words):
        raise argparse.ArgumentTypeError(f"expected comma-separated words without blanks, got {text!r}")
    return words


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Synthesise a keyword data set with espeak-ng: <out>/<word>/<voice>_nohash_<n>.wav for every keyword, "
        "plus _unknown_ (other words) and _silence_ (noise); 16 kHz mono 16-bit, 1 s clips. Many voices and "
        "variants, speeds, pitches, levels, positions and low-level noise. Same --seed, same files."
    )
    parser.add_argument("--words", required=True, type=_word_list, help="comma-separated keywords, e.g. yes,no,up")
    parser.add_argument(
        "--negatives", type=_word_list, default=None,
        help="comma-separated words for _unknown_ (default: ~30 other short English words, minus the keywords)",
    )  # fmt: skip
    parser.add_argument("--per-word", type=_count, default=100, help="clips per keyword (default 100)")
    parser.add_argument("--silence", type=_count, default=None, help="_silence_ clips (default: --per-word; 0: none)")
    parser.add_argument("--unknown", type=_count, default=None, help="_unknown_ clips (default: --per-word; 0: none)")
    parser.add_argument("--out", required=True, help="output folder (must be empty or new unless --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed -> byte-identical files (default 0)")
    parser.add_argument("--jobs", type=_positive, default=None, help="parallel workers (default: CPU count)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="write into a non-empty folder: the files an earlier 'speech synth' wrote there (listed in its "
        "synth.json, unchanged since) are replaced; your own recordings and folders are never touched, and a "
        "clash with one of them is an error",
    )  # fmt: skip
    parser.add_argument("--language", default="en", help="espeak-ng voices to use (--voices=LANG; default en)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def summary_table(summary: SynthSummary):
    """A rich table of clips per label and the total."""
    from rich.table import Table

    table = Table(title=f"synthesised {summary.out_dir}")
    table.add_column("label")
    table.add_column("clips", justify="right")
    for label, count in summary.counts.items():
        table.add_row(label, str(count))
    table.add_section()
    table.add_row("total", str(summary.clips))
    return table


def summary_line(summary: SynthSummary) -> str:
    """Totals and speed in one line."""
    return (
        f"{summary.clips} clips in {summary.seconds:.1f} s, {summary.clips_per_second:.0f} clips/s; {summary.speakers} pseudo speakers "
        f"(voice+variant) of {summary.voices}; {summary.espeak_calls} espeak-ng calls"
        + (f"; replaced {summary.removed} clips of the earlier synth run" if summary.removed else "")
        + (f"; kept {len(summary.kept)} file(s) synth did not write" if summary.kept else "")
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    with ProgressBars(enabled=not args.no_progress) as bars:
        summary = synthesize_dataset(
            args.out,
            args.words,
            negatives=args.negatives,
            per_word=args.per_word,
            silence=args.silence,
            unknown=args.unknown,
            seed=args.seed,
            jobs=args.jobs,
            overwrite=args.overwrite,
            progress=bars,
            language=args.language,
        )
    console = Console()
    console.print(summary_table(summary))
    console.print(summary_line(summary))
    return 0
