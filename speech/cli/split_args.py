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
from dataclasses import dataclass
from pathlib import Path

from speech.data.index import SPLIT_METHODS
from speech.data.record import DataRecord
from speech.data.splits import DEFAULT_SEED, PARTITIONS

DEFAULTS = {
    "split_rule": "auto",
    "validation_percent": 10.0,
    "testing_percent": 10.0,
    "silence_percent": 10.0,
    "unknown_percent": 10.0,
    "split_seed": DEFAULT_SEED,
}


def add_split_arguments(parser: argparse.ArgumentParser, *, partition: bool = True) -> None:
    """Add the split options (all default to None: "from the model's record, else the library default")."""
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
        "seeded speaker-disjoint split (speaker); default: the model's training rule on its own folder, else auto",
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
            help=f"{what} in percent (default: the model's training setting, else 10)",
        )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help=f"seed of the speaker rule and of _unknown_/_silence_ sampling (default: the model's, else {DEFAULT_SEED})",
    )


@dataclass
class SplitChoice:
    """The resolved split: ``partition`` to score, ``index_options`` for :func:`speech.data.build_index`, and
    ``source`` (``"model record"`` or ``"defaults"``) for the report."""

    partition: str
    index_options: dict
    source: str

    def describe(self) -> dict:
        return {"partition": self.partition, "source": self.source, **self.index_options}


def resolve_split(args: argparse.Namespace, record: DataRecord | None, root: str | Path) -> SplitChoice:
    """Fill the options left unset from ``record`` when ``root`` is the folder it describes, else from defaults."""
    own = record is not None and record.same_root(root)
    base = dict(DEFAULTS)
    if own:
        base.update(
            split_rule=record.split_rule,
            validation_percent=record.validation_percent,
            testing_percent=record.testing_percent,
            silence_percent=record.silence_percent,
            unknown_percent=record.unknown_percent,
            split_seed=record.seed,
        )
    chosen = {key: getattr(args, key, None) for key in DEFAULTS}
    values = {key: base[key] if chosen[key] is None else chosen[key] for key in DEFAULTS}
    partition = getattr(args, "split", None) or (record.held_out_split() if own else "test")
    options = {
        "split": values["split_rule"],
        "validation_percent": float(values["validation_percent"]),
        "testing_percent": float(values["testing_percent"]),
        "silence_percent": float(values["silence_percent"]),
        "unknown_percent": float(values["unknown_percent"]),
        "seed": int(values["split_seed"]),
    }
    return SplitChoice(partition, options, "model record" if own else "defaults")
