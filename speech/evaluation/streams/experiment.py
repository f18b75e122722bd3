"""One stream experiment: check the outputs, gather the clips, build the streams and score them once.

What the model said on every hop is then replayed under any detector settings by the analysis that called the
pipeline: :mod:`~speech.evaluation.streams.testing` (``speech stream-test``: the figures of one setting, the
stream files, a sweep) and :mod:`~speech.evaluation.streams.calibration` (``speech calibrate``: thresholds
fitted on the stored scores). Both check every output before the model runs and write into a folder that holds
no earlier results.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from speech.errors import OutputExistsError
from speech.evaluation.streams.build import StreamSet, StreamSpec, join_stream_sets
from speech.evaluation.streams.running import RunningOptions, RunningSource, build_running_stream
from speech.evaluation.streams.source import SourceOptions, StreamSource, stream_source
from speech.streaming.engine import StreamingConfig

log = logging.getLogger(__name__)

RUNS_DIR = Path("speech-runs")  # default report folders go below it (git-ignored), never loose in the working folder


def output_dir(requested: str | Path | None, names: tuple[str, ...], prefix: str, *, create: bool = True) -> Path:
    """The folder to write into: ``requested`` (must not hold earlier results, must be writable) or a new
    timestamped one (``speech-runs/<prefix>-<time>``). Raises :class:`OutputExistsError` /
    :class:`~speech.errors.OutputPlaceError` (``param`` ``"out_dir"``). ``create=False`` only checks: call it
    before any long work, then again with the same ``requested`` to create it. A new timestamped folder is claimed
    when it is created, so runs started in the same second get folders of their own (``-2``, ``-3`` ...)."""
    from speech.utils.files import check_can_create

    if requested is None:
        stamp = f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"
        for n in itertools.count(1):
            folder = RUNS_DIR / (stamp if n == 1 else f"{stamp}-{n}")
            check_can_create(folder, "output folder", param="out_dir")
            if not create:
                return folder
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                continue
    folder = Path(requested)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder}: exists and is not a folder", param="out_dir")
    clash = [name for name in names if (folder / name).exists()]
    if clash:
        raise OutputExistsError(f"{folder} already holds {', '.join(clash)}; refusing to overwrite; choose another "
                                "folder", param="out_dir")
    check_can_create(folder, "output folder", param="out_dir")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class StreamExperiment:
    """What an experiment runs: the ``scorer`` loaded from ``model``, the engine and detector ``config``, where
    the clips come from (``source``), how the streams are generated (``spec``) and, optionally, a stream of
    running speech (``running``, issue #18)."""

    scorer: object
    model: str | Path
    config: StreamingConfig
    source: SourceOptions
    spec: StreamSpec = field(default_factory=StreamSpec)
    running: RunningOptions | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.scorer.labels)


@dataclass
class ScoredExperiment:
    """The streams of an experiment, scored once (the running stream in ``streams.running`` when asked), what
    they were built from (``source``, ``running_source``, and ``more_sources``: the other folders whose streams were
    joined to them) and the output folder ``out`` (created)."""

    streams: StreamSet
    source: StreamSource
    running_source: RunningSource | None
    out: Path
    more_sources: list[StreamSource] = field(default_factory=list)


def run_experiment(experiment: StreamExperiment, *, out_dir: str | Path | None, names: tuple[str, ...],
                   prefix: str, json_path: str | Path | None = None, announce: str,
                   more: Sequence[StreamExperiment] = ()) -> ScoredExperiment:
    """Check the outputs (``out_dir`` or a new ``speech-runs/<prefix>-<time>`` folder must not hold ``names``;
    ``json_path`` must be new), gather the clips, create the folder, then build and score the streams. ``announce``:
    the log line (partition, folder, speakers, split source, minutes of audio) said before the model runs.
    ``more``: experiments on other folders (their ``running`` is not used) whose streams are joined to this one's
    (:func:`~speech.evaluation.streams.build.join_stream_sets`); their clips are gathered and checked before any
    stream is scored."""
    from speech.utils.files import check_json_path

    if json_path is not None:
        check_json_path(json_path)
    out = output_dir(out_dir, names, prefix, create=False)  # checked before any work, created once the clips are in
    source = stream_source(experiment.scorer, experiment.source)
    more_sources = [stream_source(e.scorer, e.source) for e in more]
    running = experiment.running
    running_source = running.source(experiment.scorer.metadata) if running is not None else None
    out = output_dir(out_dir, names, prefix)
    sets = []
    for e, s in zip((experiment, *more), (source, *more_sources), strict=True):
        data = s.info
        log.info(announce, data["partition"], data["root"], data["speakers"], data["source"], sum(e.spec.lengths()))
        sets.append(e.spec.build(e.scorer, e.config, s))
    streams = join_stream_sets(sets)
    if running_source is not None:
        streams.running = build_running_stream(experiment.scorer, experiment.config, running_source.utterances,
                                               seed=running.seed, max_minutes=running.minutes)
    return ScoredExperiment(streams, source, running_source, out, more_sources)
