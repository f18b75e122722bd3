"""Which thresholds a stream detector uses: the user's one threshold, the model's calibrated per-keyword ones,
or the default; read from a model file's ``"detection"`` section (written by :mod:`speech.evaluation.streams.fitting`).

This is what ``speech live``, ``speech stream-test`` and :class:`speech.Model` use; it needs no torch.
"""

from __future__ import annotations

from dataclasses import replace

from speech.streaming.detection import DetectorConfig, threshold_config
from speech.streaming.engine import StreamingConfig

SECTION = "detection"
NEVER = 1.0  # an averaged probability never exceeds 1: the keyword is never reported


def detector_settings(config: StreamingConfig) -> dict:
    """The engine and detector settings thresholds are only valid for (stored beside them)."""
    d = config.detector
    return {
        "hop_ms": config.hop_ms,
        "average_window_ms": d.average_window_ms,
        "suppression_ms": d.suppression_ms,
        "minimum_count": d.minimum_count,
        "release": d.release,
        "keyword_share": d.keyword_share,
        "quick_average_ms": d.quick_average_ms,
        "quick_threshold": d.quick_threshold if d.quick_average_ms is not None else None,
        "talk_before": d.talk_before,
        "talk_before_ms": d.talk_before_ms if d.talk_before is not None else None,
        "gate_db": config.gate_db,
        "flush_ms": config.flush_ms,
        "stateful": config.stateful,
        "stream_states": config.stream_states if config.stateful else None,
    }


# the settings of thresholds calibrated before a setting existed: one speed, no talk rule
OLDER = {"quick_average_ms": None, "quick_threshold": None, "talk_before": None, "talk_before_ms": None}


def calibrated_thresholds(metadata: dict | None) -> dict[str, float] | None:
    """The per-keyword thresholds stored in a model's metadata, or None when it was never calibrated."""
    section = (metadata or {}).get(SECTION)
    if not isinstance(section, dict) or not isinstance(section.get("thresholds"), dict):
        return None
    try:
        return {str(k): float(v) for k, v in section["thresholds"].items()}
    except (TypeError, ValueError):
        return None


def detector_from_metadata(
    metadata: dict | None, base: DetectorConfig, threshold: float | None = None
) -> tuple[DetectorConfig, str]:
    """The detector settings to use and where its thresholds come from.

    ``threshold`` (the user's ``--threshold``) wins: one threshold for every label. Else the calibrated
    per-keyword thresholds stored in ``metadata``, with the ``keyword_share`` they were calibrated with (they hold
    for those scores only; :func:`calibrated_keyword_share`); else ``base.threshold``.
    """
    if threshold is not None:
        return threshold_config(base, threshold), f"--threshold {threshold:g}"
    stored = calibrated_thresholds(metadata)
    if stored:
        section = metadata[SECTION]
        target = section.get("target_false_accepts_per_hour")
        what = "calibrated per keyword (model metadata"
        what += f", target {target:g} false accepts/hour)" if isinstance(target, int | float) else ")"
        if over := over_target(metadata):
            what += f"; {over_target_warning(over)}"
        return replace(base, thresholds=stored, keyword_share=calibrated_keyword_share(metadata)), what
    return base, f"default {base.threshold:g} (model not calibrated)"


def calibrated_keyword_share(metadata: dict | None) -> float | None:
    """The ``keyword_share`` a model's stored thresholds were calibrated with; None when off, and for thresholds
    calibrated before the setting existed (they were fitted on unpooled scores)."""
    section = (metadata or {}).get(SECTION)
    settings = section.get("settings") if isinstance(section, dict) else None
    value = settings.get("keyword_share") if isinstance(settings, dict) else None
    return float(value) if isinstance(value, int | float) else None


def check_keyword_share(metadata: dict | None, requested: float | None, threshold: float | None) -> None:
    """A ``--keyword-share`` the user gave (``requested``) must agree with a model's calibrated thresholds when
    those are used (no ``--threshold``): they hold for the scores they were fitted on only. Raises ValueError."""
    if threshold is not None or calibrated_thresholds(metadata) is None:
        return
    calibrated = calibrated_keyword_share(metadata)
    if requested != calibrated:
        fitted = "off" if calibrated is None else f"{calibrated:g}"
        raise ValueError(f"the model's calibrated thresholds were fitted with keyword share {fitted}; give "
                         "--threshold as well, or calibrate again with this --keyword-share")


def over_target(metadata: dict | None) -> list[str]:
    """The keywords whose stored threshold could not meet the calibration targets (they have the best one found)."""
    section = (metadata or {}).get(SECTION)
    over = section.get("over_target") if isinstance(section, dict) else None
    return [str(k) for k in over] if isinstance(over, list) else []


def over_target_warning(keywords: list[str]) -> str:
    """The one warning every front end shows for :func:`over_target` keywords."""
    return (f"WARNING: no threshold met the targets for {', '.join(keywords)} on the calibration streams; "
            f"{'it has' if len(keywords) == 1 else 'they have'} the best threshold found, with more false accepts "
            "than the target")


# a setting that only applies while another is on: not named again when that one is switched on or off
FOLLOWS = {"quick_threshold": "quick_average_ms", "talk_before_ms": "talk_before", "stream_states": "stateful"}


def settings_mismatch(metadata: dict | None, config: StreamingConfig) -> list[str]:
    """Settings of ``config`` that differ from those the stored thresholds were calibrated with (one that only
    applies while another is on is not named again when that one is off on one side: :data:`FOLLOWS`)."""
    section = (metadata or {}).get(SECTION)
    if not isinstance(section, dict) or not isinstance(section.get("settings"), dict):
        return []
    now = detector_settings(config)
    stored = {**OLDER, **section["settings"]}
    differ = {k for k, v in stored.items() if k in now and now[k] != v}
    switched = {k for k in differ if now[k] in (None, False) or stored[k] in (None, False)}  # on one side only
    return [f"{k} {now[k]} (calibrated with {stored[k]})" for k in stored if k in differ and FOLLOWS.get(k) not in switched]


def resolve_detector(metadata: dict | None, config: StreamingConfig,
                     threshold: float | None = None) -> tuple[StreamingConfig, str, list[str]]:
    """The one resolution of the thresholds that ``speech live``, ``speech stream-test`` and
    :meth:`speech.Model.streamer` use: ``config`` with the detector :func:`detector_from_metadata` picks, where its
    thresholds come from (a line for the user), and the settings of ``config`` that differ from those the model's
    thresholds were calibrated with (:func:`settings_mismatch`; none when ``threshold`` replaces them)."""
    detector, source = detector_from_metadata(metadata, config.detector, threshold)
    resolved = replace(config, detector=detector)
    return resolved, source, settings_mismatch(metadata, resolved) if threshold is None else []
