"""File-level checks of speech.audio.io: the header rule every command shares, and loud float files."""

from __future__ import annotations

import logging
import struct

import numpy as np
import pytest
import soundfile as sf
from conftest import SC_V2_TEST

from speech.audio.io import AudioError, audio_problem, fit_window, fix_length, load_audio, read_audio


@pytest.fixture(scope="module")
def clip_bytes() -> bytes:
    return next((SC_V2_TEST / "yes").glob("*.wav")).read_bytes()


def test_a_truncated_wav_is_refused_with_both_lengths(tmp_path, clip_bytes):
    path = tmp_path / "cut.wav"
    path.write_bytes(clip_bytes[: len(clip_bytes) // 2])
    assert sf.info(str(path)).frames > 0  # soundfile alone would read the half that is there, silently
    problem = audio_problem(path)
    assert problem.startswith("truncated: its header declares 16000 samples (1.000 s), the file holds 79")
    with pytest.raises(AudioError, match=r"cut\.wav: truncated"):
        load_audio(path)


def test_streaming_placeholder_sizes_are_accepted_and_empty_data_is_not(tmp_path, clip_bytes):
    reference = load_audio(next((SC_V2_TEST / "yes").glob("*.wav")))
    for size in (0xFFFFFFFF, 0x7FFFF000):  # what a writer puts there before it knows the length
        raw = bytearray(clip_bytes)
        struct.pack_into("<I", raw, 40, size)
        path = tmp_path / f"stream-{size:x}.wav"
        path.write_bytes(raw)
        assert audio_problem(path) is None
        np.testing.assert_array_equal(load_audio(path), reference)
    raw = bytearray(clip_bytes)
    struct.pack_into("<I", raw, 40, 0)
    (tmp_path / "zero.wav").write_bytes(raw)
    assert "holds no samples" in audio_problem(tmp_path / "zero.wav")
    (tmp_path / "text.wav").write_text("not audio\n" * 10)
    with pytest.raises(AudioError, match=r"text\.wav: not a readable audio file"):
        read_audio(tmp_path / "text.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert audio_problem(tmp_path / "empty.wav") == "empty file (0 bytes)"


def test_float_audio_beyond_full_scale_is_clipped_with_a_warning_and_far_beyond_refused(tmp_path, caplog):
    """The bad-samples rule of speech/audio/io.py (issue #36): a little over full scale is clipped, with a warning;
    more than 12 dB over is not audio (integer PCM stored as float, say) and is refused, naming the file."""
    wave, rate = sf.read(next((SC_V2_TEST / "yes").glob("*.wav")), dtype="float32")
    wave = wave / np.abs(wave).max()
    sf.write(tmp_path / "hot.wav", wave * 3.0, rate, subtype="FLOAT")
    sf.write(tmp_path / "edge.wav", wave * 1.0004, rate, subtype="FLOAT")  # rounding, not a problem
    sf.write(tmp_path / "loud.wav", wave * 40.0, rate, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="speech.audio.io"):
        hot = load_audio(tmp_path / "hot.wav")
        edge = load_audio(tmp_path / "edge.wav")
    assert np.array_equal(hot, np.clip(wave * 3.0, -1.0, 1.0)) and float(np.abs(edge).max()) <= 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "hot.wav: float samples reach 3" in warnings[0] and "9.5 dB" in warnings[0]
    assert "clipped at full scale" in warnings[0]
    with pytest.raises(AudioError, match=r"loud.wav: float samples reach 40, 32 dB above full scale \(the first at"):
        load_audio(tmp_path / "loud.wav")


def test_a_clip_fits_a_longer_window_centred_and_a_1s_window_as_always():
    clip = load_audio(next((SC_V2_TEST / "yes").glob("*.wav")), samples=None)
    short, longer = clip[:12_800], np.concatenate([clip, clip[:3_200]])  # 0.8 s and 1.2 s of real speech
    for wave in (short, clip, longer):
        assert np.array_equal(fit_window(wave), fix_length(wave))  # a 1 s model: padded at the end, as always
    window = fit_window(short, 24_000)  # padded to 1 s at the end first, then 0.25 s of zeros either side
    assert np.array_equal(window, np.concatenate([np.zeros(4_000), short, np.zeros(3_200 + 4_000)]))
    assert np.array_equal(fit_window(longer, 24_000), np.pad(longer, (2_400, 2_400)))  # centred as it is
    assert np.array_equal(fit_window(np.concatenate([longer, longer]), 24_000), np.concatenate([longer, longer])[7_200:31_200])
    assert np.array_equal(fit_window(clip, 12_000), clip[2_000:14_000])  # a shorter window keeps the middle
