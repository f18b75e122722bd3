"""One vocabulary for data splits across the commands that read a data folder.

``--split`` is the partition scored (``test``/``validation``/``train``/``all``); ``--split-rule`` how clips are
assigned to partitions (``auto``/``lists``/``hash``/``speaker``); ``--validation-percent``,
``--testing-percent``, ``--silence-percent``, ``--unknown-percent`` and ``--split-seed`` its settings. Training
spells them ``--data.split_rule``, ``--data.validation_percent``, ... ``--data.split_seed``.

Left unset, each comes from the model's own record of its training data when the folder is the one it was
trained on (so the split is rebuilt exactly and the default partition is the held-out one), else from the
library defaults.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech.data.record import DataRecord, SplitChoice, choose_split
from speech.data.splits import PARTITIONS, SPLIT_METHODS, SplitSettings

# the command line's spelling of each SplitSettings field (the option is its dash-spelled form)
OPTION_OF = {
    "rule": "split_rule",
    "validation_percent": "validation_percent",
    "testing_percent": "testing_percent",
    "silence_percent": "silence_percent",
    "unknown_percent": "unknown_percent",
    "seed": "split_seed",
}


def add_split_arguments(parser: argparse.ArgumentParser, *, partition: bool = True) -> None:
    """Add the split options (all default to None: "from the model's record, else the library default").
    ``partition`` False: a command without a model (``data summary``), whose help speaks of no model."""
    model = "the model's training rule on its own folder, else " if partition else ""
    setting = "the model's training setting, else " if partition else ""
    seed_from = "the model's, else " if partition else ""
    if partition:
        parser.add_argument(
            "--split",
            choices=tuple(PARTITIONS),
            default=None,
            help="partition to score (default: the held-out one the model was trained without: test when its "
            "run had a test split, else validation; 'test' for other folders)",
        )
    parser.add_argument(
        "--split-rule",
        choices=SPLIT_METHODS,
        default=None,
        help="how clips are split: official lists when present else the hash rule (auto), lists, hash, or a "
        f"seeded speaker-disjoint split (speaker); default: {model}auto",
    )
    for name, what in (
        ("validation", "validation share"),
        ("testing", "testing share"),
        ("silence", "added _silence_ examples"),
        ("unknown", "added _unknown_ examples"),
    ):
        parser.add_argument(
            f"--{name}-percent",
            type=float,
            default=None,
            help=f"{what} in percent (default: {setting}{getattr(SplitSettings, f'{name}_percent'):g})",
        )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help=f"seed of the speaker rule and of _unknown_/_silence_ sampling (default: {seed_from}{SplitSettings.seed})",
    )


def resolve_split(args: argparse.Namespace, record: DataRecord | None, root: str | Path) -> SplitChoice:
    """The split the options ask for: :func:`speech.data.record.choose_split` with what the user set."""
    chosen = {field: getattr(args, option, None) for field, option in OPTION_OF.items()}
    return choose_split(record, root, getattr(args, "split", None), **chosen)
