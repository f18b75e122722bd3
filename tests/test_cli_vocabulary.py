"""One vocabulary across the commands: the same option names for the same things, in every --help."""

from __future__ import annotations

import re

import pytest

from speech.cli import main
from speech.cli.train import main as train_main

SPLIT_OPTIONS = ["--split-rule", "--validation-percent", "--testing-percent", "--silence-percent",
                 "--unknown-percent", "--split-seed"]  # fmt: skip


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"]) if argv[0] != "train" else train_main(["--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_.-]*)", text))


def test_every_data_command_names_the_split_the_same_way(capsys):
    for command in (["evaluate"], ["stream-test"], ["data", "summary"]):
        found = options(help_text(capsys, *command))
        assert set(SPLIT_OPTIONS) <= found, (command, sorted(found))
        assert "--seed" not in found or command == ["stream-test"], command  # no bare --seed for the split
    assert "--split" not in options(help_text(capsys, "data", "summary"))  # --split is the scored partition
    for command in (["evaluate"], ["stream-test"]):
        text = help_text(capsys, *command)
        assert "--split {test,validation,train,all}" in text and "the model's" in text  # defaults from the record
    train = options(help_text(capsys, "train"))
    assert {"--data.split_rule", "--data.validation_percent", "--data.testing_percent", "--data.silence_percent",
            "--data.unknown_percent", "--data.split_seed", "--data.labels"} <= train  # fmt: skip
    assert "--data.split" not in train and "--data.seed" not in train


def test_abbreviations_are_refused(capsys):
    """'--split' must never quietly mean '--split-rule' (or '--split-seed')."""
    for command in (["data", "summary", "somewhere"], ["evaluate", "model.ckpt", "--data", "somewhere"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--split-r", "speaker"])
        assert info.value.code == 2 and "unrecognized arguments: --split-r speaker" in capsys.readouterr().err
