"""``speech data``: dataset tools.

* ``speech data download --version v0.02 --root DIR`` fetches and extracts the official archives;
* ``speech data download-librispeech --part train-clean-100 --root DIR`` fetches a LibriSpeech part, the running
  speech of ``configs/live.yaml`` (``--data.running_speech``) and of the false-accept tests;
* ``speech data summary ROOT [--labels auto] [--split-rule auto] [--json]`` shows clips per split and label,
  speakers, skipped files and durations. The split options are the ones ``speech evaluate`` and
  ``speech stream-test`` take (``--split-rule``, ``--validation-percent``, ..., ``--split-seed``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from speech.cli import command_parser
from speech.cli.program import program
from speech.cli.progress import ProgressBars
from speech.cli.split_args import add_split_arguments, resolve_split
from speech.data.download import (
    DEFAULT_URL_BASE,
    KNOWN_SHA256,
    LIBRISPEECH_PARTS,
    LIBRISPEECH_URL_BASE,
    VERSIONS,
    archive_names,
)
from speech.errors import SettingError

FLAG_HINTS = {"root": "--root", "part": "--part"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subcommands(dest="action", required=True, metavar="ACTION")
    down = command_parser("speech data download", "download and extract the official Speech Commands archives")
    down.add_argument("--version", choices=VERSIONS, default="v0.02", help="data set version (default v0.02)")
    down.add_argument(
        "--root", required=True, help="folder to download into; archives extract into subfolders"
    )
    down.add_argument(
        "--url-base", default=DEFAULT_URL_BASE, help=f"where the archives live (default {DEFAULT_URL_BASE})"
    )
    down.add_argument(
        "--test-set",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fetch the official test set",
    )
    down.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="[ARCHIVE=]HEX",
        help="expected SHA-256 (repeatable); a bare HEX applies to the main archive",
    )
    down.add_argument(
        "--delete-archives", action="store_true", help="remove the .tar.gz files after extracting"
    )
    down.add_argument("--no-progress", action="store_true", help="no progress bars")

    libri = command_parser(
        "speech data download-librispeech",
        "download and extract a part of LibriSpeech (transcribed running read speech, CC BY 4.0) into "
        "ROOT/librispeech-PART/: the running speech for --data.running_speech (configs/live.yaml) and for "
        "'speech stream-test --running-speech'",
    )
    libri.add_argument("--part", choices=LIBRISPEECH_PARTS, default="train-clean-100",
                       help="which part (default train-clean-100: 100 h of 251 readers, 6.3 GB; dev-clean: 5.4 h of "
                            "40 readers, 337 MB)")
    libri.add_argument("--root", required=True, help="folder to download into")
    libri.add_argument("--url-base", default=LIBRISPEECH_URL_BASE,
                       help=f"where the archives live (default {LIBRISPEECH_URL_BASE})")
    libri.add_argument("--sha256", metavar="HEX", help="expected SHA-256 (default: the known one of the part)")
    libri.add_argument("--delete-archives", action="store_true", help="remove the .tar.gz file after extracting")
    libri.add_argument("--no-progress", action="store_true", help="no progress bars")

    summ = command_parser(
        "speech data summary",
        "Clips per split and label, speakers, bad (skipped) files and durations of a data folder. "
        "The split options are those of 'speech evaluate' / 'speech stream-test' ('--data.split_rule', "
        "'--data.validation_percent', ... '--data.split_seed' in 'speech train').",
    )
    summ.add_argument("root", help="data folder (full archive, test-set archive or <label>/*.wav folders)")
    summ.add_argument(
        "--labels",
        default="auto",
        help="auto (default: the 12 Speech Commands classes for Speech Commands data, else the folder's own "
        "labels), 12, 35, all, or comma-separated words",
    )
    add_split_arguments(summ, partition=False)
    summ.add_argument("--no-durations", action="store_true", help="skip reading the file headers")
    summ.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    sub.add_subcommand("download", down, help="download and extract the official Speech Commands archives")
    sub.add_subcommand("download-librispeech", libri, help="download and extract a LibriSpeech part (running speech)")
    sub.add_subcommand("summary", summ, help="clips per split x label, speakers, bad files, durations")


def _checksums(values: list[str], version: str, test_set: bool) -> dict[str, str]:
    names = archive_names(version, test_set)
    result = {}
    for value in values:
        name, _, digest = value.rpartition("=")
        name = name or names[0]
        if name not in names:
            raise SettingError(f"--sha256 {value!r}: archive must be one of {names}")
        result[name] = _hex(digest, f"--sha256 {value!r}")
    return result


def _hex(digest: str, what: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise SettingError(f"{what}: expected 64 hexadecimal digits")
    return digest.lower()


def run_download(args: argparse.Namespace) -> int:
    from speech.data.download import download_dataset

    checksums = _checksums(args.sha256, args.version, args.test_set)
    for name in archive_names(args.version, args.test_set):
        if name not in checksums and name not in KNOWN_SHA256:
            print(
                f"note: no published checksum is known for {name}; it will not be verified", file=sys.stderr
            )
    with ProgressBars(enabled=not args.no_progress) as bars:
        folders = download_dataset(
            args.version,
            args.root,
            url_base=args.url_base,
            test_set=args.test_set,
            sha256=checksums,
            progress=bars,
            keep_archives=not args.delete_archives,
        )
    for name, folder in folders.items():
        print(f"{name} -> {folder}")
    return 0


def run_download_librispeech(args: argparse.Namespace) -> int:
    from speech.data.download import download_librispeech

    digest = _hex(args.sha256, "--sha256") if args.sha256 else None
    with ProgressBars(enabled=not args.no_progress) as bars:
        folder = download_librispeech(args.part, args.root, url_base=args.url_base, sha256=digest, progress=bars,
                                      keep_archive=not args.delete_archives)
    print(f"{args.part} -> {folder}")
    print(f"Next:\n  {program()} train --config configs/live.yaml --data.running_speech {shlex.quote(str(folder))}")
    return 0


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)  # long paths stay on one line
    splits = list(summary["totals"])
    table = Table(title=f"{summary['root']}  (layout {summary['layout']}, split {summary['split_method']})")
    table.add_column("label")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for label in summary["labels"]:
        counts = [summary["clips"][split][label] for split in splits]
        table.add_row(label, *map(str, counts), str(sum(counts)))
    table.add_section()
    totals = [summary["totals"][split] for split in splits]
    table.add_row("[bold]clips", *map(str, totals), str(sum(totals)))
    table.add_row("speakers", *(str(summary["speakers"][split]) for split in splits), "")
    if any(summary["silence_examples"].values()):
        table.add_row("(zero silence)", *(str(summary["silence_examples"][split]) for split in splits), "")
    console.print(table)
    console.print(f"noise files: {summary['noise_files']}   _silence_ clips: {summary['silence_files']}")
    if "durations" in summary:
        d = summary["durations"]
        if d.get("files"):
            console.print(
                f"durations over {d['files']} files: min {d['min_s']:.3f} s, median {d['median_s']:.3f} s, "
                f"mean {d['mean_s']:.3f} s, max {d['max_s']:.3f} s, {d['total_hours']:.2f} h; "
                f"{d['not_1s']} not 1 s; sample rates {d['sample_rates']}; channels {d['channels']}"
            )
    bad = summary["bad_files"]
    console.print(f"bad files skipped: {bad['count']}")
    for path, reason in bad["first"]:
        console.print(f"  {path}: {reason}", markup=False)


def run_summary(args: argparse.Namespace) -> int:
    from speech.data.index import build_index
    from speech.data.summary import summarize

    index = build_index(args.root, args.labels, resolve_split(args, None, args.root).settings)
    summary = summarize(index, durations=not args.no_durations)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary({**summary, "root": args.root})  # the folder as the user typed it
    return 0


def run(args: argparse.Namespace) -> int:
    actions = {"download": run_download, "download-librispeech": run_download_librispeech, "summary": run_summary}
    return actions[args.action](args)
