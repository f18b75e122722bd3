"""The memory-mapped waveform cache and noise loading, on real clips and generated bad files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FSDD, SC_V2_TEST
from synthetic_data import full_layout_tree, link_or_copy, write_bad_files

from speech.audio.io import load_audio, pcm_to_float
from speech.data import (
    CacheError,
    Example,
    SplitSettings,
    build_index,
    cache_key,
    cached_waveforms,
    generated_noise,
    load_noise,
)
from speech.data.cache import cache_paths


@pytest.fixture(scope="module")
def small_split():
    index = build_index(SC_V2_TEST, "12", split=SplitSettings("speaker"))
    return index.splits["validation"][:120]


def test_cache_matches_load_audio_and_is_reused(tmp_path, small_split, monkeypatch):
    cached = cached_waveforms(small_split, tmp_path / "cache", progress=False, num_workers=2)
    assert isinstance(cached.waves, np.memmap) and not cached.waves.flags.writeable
    assert cached.waves.shape == (120, 16000) and cached.waves.dtype == np.int16
    assert cached.labels.dtype == np.int64 and list(cached.labels) == [e.label for e in small_split]
    assert cached.examples == small_split and cached.bad_files == []
    for row, example in zip(cached.waves[:20], small_split[:20], strict=True):
        np.testing.assert_array_equal(
            pcm_to_float(row), load_audio(example.path)
        )  # bit-exact for 16-bit clips
    npy, sidecar = cache_paths(tmp_path / "cache", cache_key(small_split, 16000, 16000, "center"))
    assert cached.path == npy and json.loads(sidecar.read_text())["clips"] == 120
    stamp = (npy.stat().st_mtime_ns, sidecar.stat().st_mtime_ns)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached split was decoded again")

    monkeypatch.setattr("speech.data.cache.decode_int16", no_decoding)
    again = cached_waveforms(small_split, tmp_path / "cache", progress=False)
    assert (npy.stat().st_mtime_ns, sidecar.stat().st_mtime_ns) == stamp  # read, not rebuilt
    np.testing.assert_array_equal(again.waves, cached.waves)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [npy.name, sidecar.name]
    )  # no tmp left


def test_changed_file_or_settings_give_a_new_cache(tmp_path, small_split):
    clip = small_split[0].path
    local = tmp_path / "clips" / os.path.basename(clip)
    link_or_copy(Path(clip), local)
    examples = [Example(str(local), 3, "spk", "yes"), Example(None, 0, "", "_silence_")]
    first = cached_waveforms(examples, tmp_path / "cache", progress=False)
    assert not first.waves[1].any()  # the silence example is a zero row
    os.utime(local, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = cached_waveforms(examples, tmp_path / "cache", progress=False)
    assert second.path != first.path
    start = cached_waveforms(examples, tmp_path / "cache", progress=False, samples=8000, crop="start")
    end = cached_waveforms(examples, tmp_path / "cache", progress=False, samples=8000, crop="end")
    full = first.waves[0]
    np.testing.assert_array_equal(start.waves[0], full[:8000])
    np.testing.assert_array_equal(end.waves[0], full[8000:])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4


def test_bad_and_awkward_files_are_decoded_or_skipped(tmp_path, caplog):
    good = next((SC_V2_TEST / "yes").glob("*.wav"))
    expected = write_bad_files(tmp_path / "data" / "yes", good)
    link_or_copy(good, tmp_path / "data" / "no" / good.name)
    index = build_index(tmp_path / "data", "all", split=SplitSettings("speaker", validation_percent=0, testing_percent=0))
    examples = index.splits["training"]
    # the scan's header check decided which files are bad (truncated ones included); the cache decodes the rest
    bad_names = sorted(os.path.basename(p) for p, _ in index.bad_files)
    assert bad_names == sorted(n for n, v in expected.items() if v == "bad")
    assert len(examples) == len(expected) + 1 - len(bad_names)
    assert "skipped" in caplog.text
    cached = cached_waveforms(examples, tmp_path / "cache", progress=True, num_workers=3)  # the rich bar too
    assert cached.bad_files == [] and len(cached.examples) == cached.waves.shape[0] == len(examples)
    assert "s2_nohash_0.wav: float samples reach 1.4" in caplog.text  # beyond full scale: used, but said
    # a file that breaks after the scan is still dropped at decode time, named, never fatal
    broken = [Example(str(tmp_path / "data" / "yes" / "s10_nohash_0.wav"), 0, "s10", "yes"), *examples[:2]]
    late = cached_waveforms(broken, tmp_path / "cache2", progress=False)
    assert len(late.examples) == 2 and "s10_nohash_0.wav" in late.bad_files[0][1]
    reference = load_audio(good)
    for row, example in zip(cached.waves, cached.examples, strict=True):
        wave = pcm_to_float(row)
        name = os.path.basename(example.path)
        assert np.abs(wave).max() <= 1.0
        if name in ("s1_nohash_0.wav", "s5_nohash_0.wav", "s6_nohash_0.flac"):  # 8/24-bit, FLAC: same audio
            assert np.abs(wave - reference).max() < 0.01
        if name == "s2_nohash_0.wav":  # float beyond full scale: normalised to peak 1
            assert np.abs(wave).max() > 0.99
        if name in (
            "s3_nohash_0.wav",
            "s4_nohash_0.wav",
            "s7_nohash_0.ogg",
        ):  # stereo average, 44.1 kHz, lossy
            assert np.corrcoef(wave, reference)[0, 1] > 0.9
    again = cached_waveforms(examples, tmp_path / "cache", progress=False)
    assert again.bad_files == cached.bad_files and again.examples == cached.examples


def test_variable_length_8khz_clips_are_resampled(tmp_path):
    index = build_index(FSDD, "zero,one", split=SplitSettings("speaker"))
    examples = index.splits["validation"][:40]
    cached = cached_waveforms(examples, tmp_path, progress=False)
    assert cached.waves.shape == (40, 16000)
    for row, example in zip(cached.waves[:5], examples[:5], strict=True):
        np.testing.assert_allclose(pcm_to_float(row), load_audio(example.path), atol=1.5 / 32768)


def test_never_clobbers_foreign_files(tmp_path, small_split):
    examples = small_split[:3]
    npy, sidecar = cache_paths(tmp_path, cache_key(examples, 16000, 16000, "center"))
    npy.write_bytes(b"somebody else's data")
    with pytest.raises(CacheError, match="not ours"):
        cached_waveforms(examples, tmp_path, progress=False)
    assert npy.read_bytes() == b"somebody else's data"
    npy.unlink()
    sidecar.write_text('{"hello": 1}')
    with pytest.raises(CacheError, match="refusing to overwrite"):
        cached_waveforms(examples, tmp_path, progress=False)
    assert sidecar.read_text() == '{"hello": 1}'
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="not a folder"):
        cached_waveforms(examples, tmp_path / "file", progress=False)


def test_an_interrupted_build_is_rebuilt(tmp_path, small_split):
    examples = small_split[:4]
    first = cached_waveforms(examples, tmp_path, progress=False)
    decoded = np.array(first.waves)
    meta = json.loads(first.path.with_suffix(".json").read_text())
    meta["bad"] = None  # as left by a build cut short before its sidecar was completed
    first.path.with_suffix(".json").write_text(json.dumps(meta))
    first.path.write_bytes(first.path.read_bytes()[:200])  # and a damaged array
    again = cached_waveforms(examples, tmp_path, progress=False)
    assert again.waves.shape == (4, 16000)
    np.testing.assert_array_equal(again.waves, decoded)
    assert json.loads(first.path.with_suffix(".json").read_text())["bad"] == []


def test_shuffled_batches_read_from_the_cache_are_the_decoded_clips(tmp_path, small_split):
    """How an epoch reads the cache: sorted index batches of a random order, straight from the memory map (its speed
    is measured by scripts/bench_data.py)."""
    cached = cached_waveforms(small_split, tmp_path, progress=False)
    order = np.random.default_rng(0).permutation(len(cached))
    for s in range(0, len(order), 64):
        rows = np.sort(order[s : s + 64])
        batch = pcm_to_float(cached.waves[rows])
        for i in (0, len(rows) - 1):
            np.testing.assert_array_equal(batch[i], load_audio(small_split[rows[i]].path))


def test_load_noise_sources(tmp_path, sc_v2_clips):
    full = build_index(full_layout_tree(tmp_path / "sc", sc_v2_clips, per_word=2), "12")
    noise = load_noise(full)
    assert noise.dtype == np.float32 and noise.ndim == 1
    assert noise.size == 3 * 16000 + 2 * 16000  # white_noise.wav (3 s) + two 1 s real clips
    test_set = build_index(SC_V2_TEST, split=SplitSettings("speaker"))
    silence = load_noise(test_set)
    assert silence.size == 291 * 16000 and np.abs(silence).max() > 0.01
    folders = build_index(FSDD, "all")
    generated = load_noise(folders, seconds=2.0, seed=5)
    assert generated.shape == (32000,) and generated.dtype == np.float32
    np.testing.assert_array_equal(generated, load_noise(folders, seconds=2.0, seed=5))
    assert not np.array_equal(generated, load_noise(folders, seconds=2.0, seed=6))
    white, pink = generated[:16000], generated[16000:]
    low = lambda w: np.abs(np.fft.rfft(w))[1:400].mean() / np.abs(np.fft.rfft(w))[4000:].mean()  # noqa: E731
    assert low(pink) > 5 * low(white)  # pink noise carries more low-frequency energy
    assert generated_noise(1).size == 1
