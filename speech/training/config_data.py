"""The data, front end and classifier a training config states, read without training.

``speech pretrain --config configs/cpu-small.yaml`` (:mod:`speech.training.pretraining`) learns from the keyword
clips of the same training split the keyword model will train on. :func:`read_training_config` merges the config
with its ``base:`` chain as ``speech train`` does (:func:`speech.training.train.expand_config_bases`), applies
``data.KEY=VALUE`` / ``model.KEY=VALUE`` overrides (``--set``; values read as YAML, dotted keys nested), and builds the
:class:`~speech.data.datamodule.SpeechCommandsDataModule` through jsonargparse, so its arguments are checked and
typed exactly as training checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from speech.errors import SettingError

OVERRIDE_SECTIONS = ("data", "model")


@dataclass
class TrainingConfig:
    """What pretraining needs of a training config: the data module (not set up), the front-end settings and the
    classifier settings (plain dictionaries, as a run's ``config.yaml`` holds them)."""

    data: Any  # SpeechCommandsDataModule
    frontend: dict
    classifier: dict


def _merge(into: dict, other: dict) -> dict:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _load(value: str) -> dict:
    """One ``--config`` value of the expanded chain: a file, or the YAML text of a config without its base line."""
    try:
        text = Path(value).read_text() if "\n" not in value and Path(value).is_file() else value
        content = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise SettingError(f"{value}: cannot read the training config ({' '.join(str(exc).split())})",
                           param="config") from None
    if not isinstance(content, dict):
        raise SettingError(f"{value}: not a training config (expected a YAML mapping, e.g. configs/cpu-small.yaml)",
                           param="config")
    return content


def parse_overrides(settings: list[str]) -> dict:
    """``["data.root=x", "model.frontend.window_ms=1500"]`` -> nested settings (values read as YAML)."""
    from speech.training.train import nested_settings

    items = []
    for setting in settings:
        key, sep, value = setting.partition("=")
        keys = key.strip().split(".")
        if not sep or len(keys) < 2 or keys[0] not in OVERRIDE_SECTIONS or not all(keys):
            raise SettingError(f"{setting!r}: expected data.KEY=VALUE or model.KEY=VALUE (the training settings "
                               "pretraining reads)", param="set")
        try:
            items.append((".".join(keys), yaml.safe_load(value)))
        except yaml.YAMLError:
            raise SettingError(f"{setting!r}: the value is not valid YAML", param="set") from None
    return nested_settings(items, lambda key, node: SettingError(
        f"{key!r}: sets a value inside a setting given as {node!r}", param="set"))


def read_training_config(config: str | Path, overrides: list[str] | None = None) -> TrainingConfig:
    """The training config ``config`` (its ``base:`` chain merged) with ``overrides`` applied; raises a one-line
    :class:`SettingError` for an unreadable config or a setting the data module refuses."""
    from jsonargparse import ArgumentParser

    from speech.data.datamodule import SpeechCommandsDataModule
    from speech.training.train import TrainSetupError, expand_config_bases

    if not Path(config).is_file():
        raise SettingError(f"{config}: no such training config", param="config")
    try:
        chain = expand_config_bases(["--config", str(config)])
    except TrainSetupError as exc:
        raise SettingError(str(exc), param="config") from None
    merged: dict = {}
    for value in chain[1::2]:
        _merge(merged, _load(value))
    _merge(merged, parse_overrides(list(overrides or [])))
    model = merged.get("model") or {}
    frontend = dict(model.get("frontend") or {})
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SpeechCommandsDataModule, "data")
    try:
        parsed = parser.parse_object({"data": merged.get("data") or {}})
        data = parser.instantiate(parsed).data
    except Exception as exc:  # jsonargparse's errors: an unknown or ill-typed data setting
        raise SettingError(f"{config}: {' '.join(str(exc).split())}", param="config") from None
    return TrainingConfig(data, frontend, dict(model.get("classifier") or {}))
