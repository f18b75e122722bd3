"""Generated long test recordings (TF's generate_streaming_test_wav protocol) built from real clips."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SC_V2_TEST

from speech.audio.activity import clip_speech_bounds
from speech.audio.io import load_audio
from speech.data import build_index, load_noise
from speech.evaluation.streams.recording import (
    generate_long_recording,
    mix_in,
    noise_recording,
)

KEYWORDS = ["yes", "no", "up", "down"]


@pytest.fixture(scope="module")
def clips(sc_v2_clips) -> dict[str, list]:
    groups = {w: sc_v2_clips[w][:20] for w in KEYWORDS}
    groups["_unknown_"] = sc_v2_clips["_unknown_"][:20]
    return groups


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return load_noise(build_index(SC_V2_TEST, labels="12"))


def test_words_every_three_seconds_with_jitter_and_unknowns(clips, noise):
    rec = generate_long_recording(clips, noise, 300.0, np.random.default_rng(0))
    assert rec.wave.shape == (300 * 16000,) and rec.wave.dtype == np.float32
    assert len(rec.words) == 100  # one per 3 s stride
    for i, word in enumerate(rec.words):
        assert 3000 * i <= word.time_ms < 3000 * i + 2000  # offset jitter in [0, word gap)
        assert rec.words[i].time_ms <= rec.onsets_ms[i] < rec.ends_ms[i] <= word.time_ms + 1000
    labels = [w.label for w in rec.words]
    assert 15 <= labels.count("_unknown_") <= 45  # 30 % of 100, loosely
    assert set(labels) == set(KEYWORDS) | {"_unknown_"}


def test_each_word_is_the_clip_it_names(clips):
    rec = generate_long_recording(clips, None, 30.0, np.random.default_rng(1))  # no background: exact
    for word, path in zip(rec.words, rec.clips, strict=True):
        assert (path in map(str, clips[word.label]))
        start = round(word.time_ms * 16)
        clip = load_audio(path)
        inner = slice(600, 16000 - 600)  # away from the 500-sample ramps
        np.testing.assert_allclose(rec.wave[start:start + 16000][inner], clip[inner], atol=1e-6)


def test_same_seed_same_recording_other_seed_differs(clips, noise):
    a = generate_long_recording(clips, noise, 30.0, np.random.default_rng(5))
    b = generate_long_recording(clips, noise, 30.0, np.random.default_rng(5))
    c = generate_long_recording(clips, noise, 30.0, np.random.default_rng(6))
    np.testing.assert_array_equal(a.wave, b.wave)
    assert a.words == b.words and a.words != c.words


def test_background_is_peak_normalised_noise_at_volume_up_to_point_one(noise):
    track = noise_recording(noise, 60.0, np.random.default_rng(0), background_volume=0.1)
    # overlapping 1.5 s segments with 250 ms cross-fades: at most two segments add up at any time
    assert 0.02 < np.abs(track).max() <= 0.2 + 1e-6
    seconds = track.reshape(60, 16000)
    rms = np.sqrt((seconds.astype(np.float64) ** 2).mean(axis=1))
    assert rms.min() < rms.max() / 4  # volumes drawn from U(0, 0.1): some seconds much quieter
    silent = noise_recording(noise, 5.0, np.random.default_rng(0), background_volume=0.0)
    assert not silent.any()


def test_mix_in_envelope_and_speech_bounds(sc_v2_clips):
    track = np.zeros(3000, np.float32)
    mix_in(track, 100, np.ones(2000, np.float32), 2000, 0.5, 500, 500)
    assert track[100] == 0.0 and track[350] == pytest.approx(0.25) and track[1000] == 0.5
    assert track[100 + 1750] == pytest.approx(0.25) and track[2100:].sum() == 0.0
    clip = load_audio(sc_v2_clips["yes"][0])
    first, last = clip_speech_bounds(clip)
    assert 0 <= first < last <= 16000
    loud = np.abs(clip[first:last]).max()
    assert loud == np.abs(clip).max()  # the loudest part lies inside the bounds
    assert np.abs(clip[:first]).max(initial=0) < loud
