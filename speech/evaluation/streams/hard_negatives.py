"""Hard-negative mining (issue #18): windows of running speech on which a trained model (nearly) fires.

:func:`mine` runs the model over the keyword-free sentences of the *train* readers of a running-speech folder (the
model's recorded reader split; :mod:`speech.evaluation.streams.running` joins them into one stream) and keeps the
windows (the model's length) whose raw score for some keyword exceeds ``threshold`` (below the detection threshold, so windows that
nearly fire count too), at most one per ``min_gap_s`` (the highest first). They are written as an int16 ``.npy``
with a ``.json`` beside it (model, readers, threshold, counts); training adds them as ``_unknown_`` with
``--data.running_speech_hard_negatives FILE.npy`` (the readers go into the data record like the other windows).

Command line: ``speech hard-negatives MODEL --running-speech DIR --out FILE.npy`` (:mod:`speech.cli.hard_negatives`).
Only train readers are mined, so the readers held out for calibration and test stay unseen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speech.data.errors import DatasetError


def mine(scorer, running_root: str | Path, *, threshold: float = 0.5, min_gap_s: float = 0.5,
         max_windows: int | None = None, seed: int = 0, max_minutes: float | None = None) -> tuple[np.ndarray, dict]:
    """``(windows int16 (n, the model's window in samples), info)`` mined from the keyword-free sentences of the
    train readers (at most
    ``max_minutes`` of them; None: all)."""
    from speech.audio.io import float_to_int16
    from speech.data.running_speech import keyword_free
    from speech.data.running_windows import model_keywords
    from speech.evaluation.streams.running import build_running_stream, running_source
    from speech.streaming.engine import StreamingConfig

    labels = list(scorer.labels)
    keywords = model_keywords(labels)
    source = running_source(running_root, scorer.metadata, "train", allow_trained_speakers=True)  # train readers
    sentences = keyword_free(source.utterances, keywords)
    if not sentences:
        raise DatasetError(f"{running_root}: the train readers have no keyword-free sentence to mine")
    stream = build_running_stream(scorer, StreamingConfig(), sentences, seed=seed, keep_wave=True,
                                  max_minutes=max_minutes)
    columns = [labels.index(k) for k in keywords]
    scores = stream.scored.scores[:, columns]
    best = scores.max(axis=1)
    order = np.argsort(-best, kind="stable")
    times = stream.scored.times
    kept: list[int] = []
    for i in order:
        if best[i] <= threshold or (max_windows is not None and len(kept) >= max_windows):
            break
        if all(abs(times[i] - times[j]) >= min_gap_s for j in kept):
            kept.append(int(i))
    window = scorer.frontend.config.window_samples
    windows = np.zeros((len(kept), window), np.int16)
    for row, i in enumerate(kept):
        end = int(round(times[i] * scorer.frontend.config.sample_rate))
        piece = stream.wave[max(0, end - window) : end]
        windows[row, window - piece.shape[0] :] = float_to_int16(piece)
    fired = {}
    for i in kept:
        k = keywords[int(scores[i].argmax())]
        fired[k] = fired.get(k, 0) + 1
    info = {
        "root": source.root,
        "readers": source.readers,
        "reader_split": source.split,
        "sentences": len(sentences),
        "stream_seconds": round(stream.seconds, 1),
        "threshold": threshold,
        "min_gap_s": min_gap_s,
        "windows": len(kept),
        "as_keyword": dict(sorted(fired.items(), key=lambda kv: -kv[1])),
        "windows_over_threshold_per_hour": round(float((best > threshold).sum()) * 3600.0 / stream.seconds, 1),
    }
    return windows, info
