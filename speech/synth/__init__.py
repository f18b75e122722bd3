"""Synthetic keyword data sets spoken by espeak-ng.

:func:`synthesize_dataset` writes a custom-keyword folder in the Speech Commands test-set layout::

    <out>/<word>/<speaker>_nohash_<n>.wav              one folder per keyword
    <out>/_unknown_/<word>_<speaker>_nohash_<n>.wav    other words (negatives)
    <out>/_silence_/noise<k>_nohash_0.wav              white / pink / brown noise, some near-silence
    <out>/synth.json                                   what was asked for, and every file this tool wrote

The manifest ``synth.json`` lists every file written (with its SHA-256) and the label folders this tool
created, before the first clip is written. ``overwrite`` deletes only those files (unchanged since) and
only those folders (once empty): real recordings added to the label folders, and folders the user made, are
kept, and a planned file that would replace one of them is refused up front.

Every clip is 16 kHz mono 16-bit PCM, exactly 1 s (16000 samples). The pseudo speaker is the espeak-ng
voice and variant (``en-gb-x-rp`` + ``m3`` -> ``en-gb-x-rp-m3``), so TensorFlow's ``_nohash_`` hash split of
the data layer keeps each voice in one split; every silence clip is its own "speaker".

Speed: espeak-ng is started once per *speaking round* (one voice, speed, pitch and amplitude) that says every
keyword once plus some negatives, separated by 1 s SSML breaks; the words are cut apart at the silent gaps.
On the 2-core development machine that is 5x faster than one espeak-ng process per word
(``scripts/bench_synth.py``: ~2.3 ms vs ~13 ms of espeak-ng per word on an idle core).
Rounds run in a thread pool (the work happens in the espeak-ng processes and in numpy, which releases
the GIL). Every round and every silence clip has its own seed, so the files are byte-identical for a seed
whatever the number of jobs.
"""


from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speech.audio.io import SAMPLE_RATE
from speech.data.labels import SILENCE_LABEL, UNKNOWN_LABEL
from speech.errors import SettingError
from speech.synth.espeak import (  # noqa: F401  (the names users of speech.synth call)
    ESPEAK,
    ESPEAK_RATE,
    EspeakError,
    EspeakNotFoundError,
    espeak_version,
    find_espeak,
    find_word_segments,
    list_languages,
    list_variants,
    speak,
    speak_many,
    speaker_id,
    voice_pool,
)
from speech.synth.manifest import (  # noqa: F401
    MANIFEST,
    MANIFEST_FORMAT,
    _prepare_output,
    _write_manifest,
    _write_new,
    read_manifest,
)
from speech.synth.plan import (  # noqa: F401
    DEFAULT_NEGATIVES,
    ClipPlan,
    RoundPlan,
    SilencePlan,
    check_words,
    label_of,
    plan_dataset,
    silence_clip,
    word_clip,
)
from speech.utils.files import check_can_create
from speech.utils.progress import ProgressCallback, Step, reporter
from speech.utils.timing import Stopwatch

log = logging.getLogger(__name__)


def wav_bytes(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono float waveform as the bytes of a 16-bit PCM WAV file (what :func:`speech.audio.io.write_wav` writes).

    Writing these bytes with plain file I/O skips the ``fsync`` soundfile does on every close (~5 ms a file).
    """
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()




def _run_task(out_dir: Path, task: RoundPlan | SilencePlan) -> list[tuple[ClipPlan, str]]:
    """Synthesise and write the clips of one task; returns each clip with the SHA-256 of its file."""
    if isinstance(task, SilencePlan):
        waves = [silence_clip(np.random.default_rng(list(clip.seed))) for clip in task.clips]
    else:
        spoken = speak_many([c.word or "" for c in task.clips], task.voice, task.speed, task.pitch, task.amplitude)
        waves = [
            word_clip(wave, np.random.default_rng(list(clip.seed)))
            for clip, wave in zip(task.clips, spoken, strict=True)
        ]
    return [(clip, _write_new(out_dir / clip.path, wav_bytes(wave))) for clip, wave in zip(task.clips, waves, strict=True)]


@dataclass
class SynthSummary:
    """What :func:`synthesize_dataset` wrote: ``counts[label]`` clips per folder, wall time in seconds."""

    out_dir: Path
    counts: dict[str, int]
    seconds: float
    speakers: int
    voices: int
    espeak_calls: int
    removed: int = 0  # files of an earlier synth run deleted because of overwrite=True
    kept: list[str] = field(default_factory=list)  # files in the folder that synth did not write (left alone)
    labels: list[str] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return sum(self.counts.values())

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("inf")


def synthesize_dataset(
    out_dir: str | Path,
    words: Sequence[str],
    *,
    negatives: Sequence[str] | None = None,
    per_word: int = 100,
    silence: int | None = None,
    unknown: int | None = None,
    seed: int = 0,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | bool | None = True,
    language: str = "en",
) -> SynthSummary:
    """Write a keyword data set spoken by espeak-ng into ``out_dir`` (layout in the module docstring).

    ``words``: the keywords (one folder each); ``negatives``: words for ``_unknown_`` (default
    :data:`DEFAULT_NEGATIVES` minus the keywords; given ones must not repeat a keyword); ``per_word`` clips per
    keyword; ``silence`` / ``unknown``: clips in ``_silence_`` / ``_unknown_`` (default ``per_word`` each; 0 leaves
    the folder out); ``seed``: same seed -> byte-identical files, whatever ``jobs`` (threads, default the CPU
    count); ``overwrite``: allow a non-empty ``out_dir``, replacing only what an earlier run wrote there (see
    :func:`_prepare_output`; your own files stay, and a clash with one is an error); ``language``: espeak-ng
    voices to draw from (``--voices=<language>``).
    Raises :class:`EspeakNotFoundError` when espeak-ng is missing,
    :class:`FileExistsError` for a non-empty folder (or a clash with a file synth did not write),
    :class:`ValueError` for bad arguments.
    """
    watch = Stopwatch().start()
    find_espeak()  # fail before anything else when espeak-ng is missing
    out_dir = Path(out_dir).expanduser()
    words = check_words(words, "words")
    if not words and per_word > 0:
        raise SettingError("words: give at least one keyword")
    for name, value in (("per_word", per_word), ("silence", silence), ("unknown", unknown)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise SettingError(f"{name} must be a whole number >= 0, got {value!r}")
    if jobs is not None and jobs < 1:
        raise SettingError(f"jobs must be >= 1, got {jobs}")
    silence = per_word if silence is None else silence
    unknown = per_word if unknown is None else unknown
    keyword_labels = {label_of(w) for w in words}
    if negatives is None:
        negatives = [w for w in DEFAULT_NEGATIVES if label_of(w) not in keyword_labels]
    else:
        negatives = check_words(negatives, "negatives")
        clash = sorted(w for w in negatives if label_of(w) in keyword_labels)
        if clash:
            raise SettingError(f"negatives: {clash} are also keywords; a word cannot be both")
    if unknown > 0 and not negatives:
        raise SettingError("unknown > 0 needs at least one negative word")
    if per_word + silence + unknown == 0:
        raise SettingError("nothing to synthesise: per_word, silence and unknown are all 0", param="per_word")
    check_can_create(out_dir, "output folder", param="out")  # a read-only place: now, not after the work
    voices = voice_pool(language)  # also checks that espeak-ng is there, before touching the folder
    if not voices:
        raise EspeakError(f"{ESPEAK} has no voices for language {language!r} (see `{ESPEAK} --voices={language}`)")
    labels = [label_of(w) for w in words] if per_word > 0 else []
    labels += [UNKNOWN_LABEL] * (unknown > 0) + [SILENCE_LABEL] * (silence > 0)
    tasks = plan_dataset(words, negatives, per_word, silence, unknown, seed, voices)
    planned = [clip.path for task in tasks for clip in task.clips]
    removed, kept, created = _prepare_output(out_dir, planned, overwrite)
    for label in labels:
        if not (out_dir / label).is_dir():
            (out_dir / label).mkdir()
            created.append(label)
    files: dict[str, str | None] = dict.fromkeys(planned)
    manifest = {
        "generator": "speech.synth",
        "format": MANIFEST_FORMAT,
        "espeak": espeak_version(),
        "words": words,
        "negatives": list(negatives),
        "per_word": per_word,
        "silence": silence,
        "unknown": unknown,
        "seed": seed,
        "language": language,
        "voices": len(voices),
        "counts": {},
        "created_folders": sorted(set(created)),
        "complete": False,
        "files": files,
    }
    _write_manifest(out_dir, manifest)  # before the first clip: a run cut short still knows its files

    jobs = jobs or os.cpu_count() or 1
    written = _run_tasks(out_dir, tasks, jobs, reporter(progress))
    counts = Counter(clip.label for clip, _ in written)
    ordered = {label: counts.get(label, 0) for label in labels}
    files.update({clip.path: digest for clip, digest in written})
    rounds = [t for t in tasks if isinstance(t, RoundPlan)]
    manifest.update(counts=ordered, complete=True, files=files)
    _write_manifest(out_dir, manifest)
    return SynthSummary(
        out_dir=out_dir,
        counts=ordered,
        seconds=watch.elapsed,
        speakers=len({t.voice for t in rounds}),
        voices=len(voices),
        espeak_calls=len(rounds),
        removed=removed,
        kept=kept,
        labels=labels,
    )


def _run_tasks(
    out_dir: Path, tasks: list[RoundPlan | SilencePlan], jobs: int, progress: ProgressCallback
) -> list[tuple[ClipPlan, str]]:
    """Run ``tasks`` in ``jobs`` threads; every clip written, with the SHA-256 of its file."""
    written: list[tuple[ClipPlan, str]] = []
    total = sum(len(t.clips) for t in tasks)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_task, out_dir, task) for task in tasks]
        progress(Step("synthesising", 0, total, "clips"))
        try:
            for future in as_completed(futures):
                written += future.result()
                progress(Step("synthesising", len(written), total, "clips"))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return written
