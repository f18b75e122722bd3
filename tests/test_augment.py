"""Training-time waveform augmentation: speed perturbation, time shift, noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SC_V2_TEST

from speech.audio.activity import speech_bounds
from speech.audio.io import load_audio
from speech.data.augment import STALE_MARGIN_MS, AugmentConfig, WaveAugment
from speech.data.reverb import room_responses
from speech.data.windows import partial_words, place_anywhere

RATE = 16_000


def peak_hz(wave: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(wave.shape[-1])))
    return float(np.fft.rfftfreq(wave.shape[-1], 1 / RATE)[spectrum.argmax()])


def test_speed_perturbation_scales_pitch_and_keeps_the_centre():
    t = torch.arange(RATE) / RATE
    tone = torch.sin(2 * torch.pi * 1000.0 * t).repeat(64, 1)
    augment = WaveAugment(torch.zeros(RATE), AugmentConfig(time_shift_ms=0, noise_probability=0, speed=0.15))
    out = augment.perturb_speed(tone, torch.Generator().manual_seed(0))
    peaks = np.array([peak_hz(row[4000:12000]) for row in out])  # the middle, away from zero-filled ends
    assert 850 - 2 <= peaks.min() and peaks.max() <= 1150 + 2, (peaks.min(), peaks.max())
    assert peaks.max() - peaks.min() > 150, "the factors should spread over [0.85, 1.15]"
    # the clip centre stays where it was (words stay in the middle of the window)
    centre = (RATE - 1) / 2
    assert torch.allclose(out[:, int(centre)], tone[:, int(centre)], atol=0.05)
    # speeding up (f > 1) reads past the clip's ends, which are zero-filled
    sped_up = peaks > 1050
    assert sped_up.any() and torch.all(out[torch.from_numpy(sped_up), :200] == 0)


def test_speed_perturbation_off_and_at_factor_one_is_identity():
    wave = torch.from_numpy(np.stack([load_audio(p) for p in sorted((SC_V2_TEST / "yes").glob("*.wav"))[:4]]))
    off = WaveAugment(torch.zeros(RATE), AugmentConfig(speed=0.0))
    assert torch.equal(off.perturb_speed(wave), wave)
    tiny = WaveAugment(torch.zeros(RATE), AugmentConfig(speed=1e-9))
    assert torch.allclose(tiny.perturb_speed(wave), wave, atol=1e-5)


def test_speed_perturbed_real_speech_keeps_its_energy_and_length():
    wave = torch.from_numpy(np.stack([load_audio(p) for p in sorted((SC_V2_TEST / "left").glob("*.wav"))[:16]]))
    augment = WaveAugment(torch.zeros(RATE), AugmentConfig(speed=0.15))
    out = augment.perturb_speed(wave, torch.Generator().manual_seed(1))
    assert out.shape == wave.shape and torch.isfinite(out).all()
    ratio = out.square().sum(1) / wave.square().sum(1)
    # resampling by f keeps the level and changes the duration by 1/f; slowing down (f < 1) crops up to 7.5 %
    # of the clip at each end, which empties the odd clip whose sound sits at its very edge
    assert int(((ratio > 0.6) & (ratio < 1.3)).sum()) >= 14, ratio


def real_words(count: int = 32) -> torch.Tensor:
    paths = [p for word in ("yes", "stop", "left") for p in sorted((SC_V2_TEST / word).glob("*.wav"))[:count]]
    return torch.from_numpy(np.stack([load_audio(p) for p in paths[:count]]))


def test_speech_bounds_cover_the_loud_part_and_silence_is_whole_window():
    waves = real_words(8)
    start, end = speech_bounds(waves)
    assert ((0 <= start) & (start < end) & (end <= RATE)).all()
    inside = torch.stack([waves[i, start[i] : end[i]].square().sum() for i in range(len(waves))])
    assert (inside / waves.square().sum(1) > 0.95).all()
    zero_start, zero_end = speech_bounds(torch.zeros(2, RATE))
    assert zero_start.tolist() == [0, 0] and zero_end.tolist() == [RATE, RATE]


def test_place_anywhere_keeps_the_whole_word_and_spreads_its_position():
    waves = real_words(1).repeat(200, 1)
    start, end = speech_bounds(waves)
    placed = place_anywhere(waves, start, end, torch.Generator().manual_seed(0))
    assert torch.allclose(placed.square().sum(1), waves.square().sum(1), rtol=1e-4)  # nothing cut off
    new_start, _ = speech_bounds(placed)
    span = int(end[0] - start[0])
    assert new_start.min() <= 1600 and new_start.max() >= RATE - span - 1600  # near both edges


def test_partial_words_keep_at_most_the_asked_share_at_an_edge():
    # a "word" of known extent (a 300 Hz tone at different places) in digital silence: what stays is countable
    t = torch.arange(RATE) / RATE
    waves = torch.zeros(64, RATE)
    starts = torch.randint(0, 6000, (64,), generator=torch.Generator().manual_seed(3)) // 160 * 160
    for i, s0 in enumerate(starts.tolist()):
        waves[i, s0 : s0 + 8000] = 0.5 * torch.sin(2 * torch.pi * 300 * t[s0 : s0 + 8000]) + 0.01
    start, end = speech_bounds(waves)
    assert torch.equal(start, starts) and torch.equal(end, starts + 8000)
    cut = partial_words(waves, start, end, max_kept=0.5, min_kept=0.2, pair_probability=0.0,
                        generator=torch.Generator().manual_seed(0))
    kept = (cut != 0).float().sum(1)
    assert ((kept >= 0.2 * 8000 - 1) & (kept <= 0.5 * 8000 + 1)).all(), kept
    at_left, at_right = cut[:, 0] != 0, cut[:, -1] != 0
    assert (at_left ^ at_right).all() and at_left.any() and at_right.any()
    paired = partial_words(waves, start, end, pair_probability=1.0, generator=torch.Generator().manual_seed(0))
    assert ((paired[:, 0] != 0) & (paired[:, -1] != 0)).all()  # a tail at the left, a head at the right
    real = real_words(32)
    real_cut = partial_words(real, *speech_bounds(real), pair_probability=0.0, generator=torch.Generator().manual_seed(0))
    assert (real_cut.square().sum(1) < real.square().sum(1)).all()


def test_stream_windows_relabel_partial_words_as_unknown_and_leave_silence_alone():
    waves = torch.cat([real_words(48), torch.zeros(16, RATE)])
    silence, unknown, word = 0, 1, 2
    labels = torch.tensor([word] * 48 + [silence] * 16)
    config = AugmentConfig(place_probability=0.5, partial_probability=0.25)
    augment = WaveAugment(torch.zeros(RATE), config, silence_label=silence, unknown_label=unknown)
    out, new_labels, moved = augment.stream_windows(waves, labels, torch.Generator().manual_seed(0))
    assert (new_labels[48:] == silence).all() and not moved[48:].any() and (out[48:] == 0).all()
    relabelled = new_labels[:48] == unknown
    assert 4 <= int(relabelled.sum()) <= 24 and moved[:48].sum() > relabelled.sum()
    # the whole chain (speed and noise off): a moved example is what stream_windows made of it and skips the
    # small time shift; every other one is its input shifted, out[t] = in[t - s] with zero fill
    quiet = AugmentConfig(place_probability=0.5, partial_probability=0.25, speed=0.0, noise_probability=0.0,
                          silence_volume=0.0)
    chain = WaveAugment(torch.zeros(RATE), quiet, silence_label=silence, unknown_label=unknown)
    full, full_labels = chain(waves, labels, torch.Generator().manual_seed(0))  # stream_windows draws first
    assert torch.equal(full_labels, new_labels) and torch.equal(full[moved], out[moved])
    shifts = [shift_of(waves[i], full[i], chain.max_shift) for i in range(len(waves)) if not moved[i] and i < 48]
    assert len(shifts) >= 8 and len(set(shifts)) > 1, shifts


def shift_of(before: torch.Tensor, after: torch.Tensor, max_shift: int) -> int:
    """The one ``s`` in ``[-max_shift, max_shift]`` with ``after[t] == before[t - s]`` for every t, zero where
    ``t - s`` falls outside the clip (fails unless exactly one fits)."""
    samples = len(before)
    fits = []
    for s in range(-max_shift, max_shift + 1):
        expected = torch.zeros(samples)
        if s >= 0:
            expected[s:] = before[: samples - s]
        else:
            expected[:s] = before[-s:]
        if torch.equal(after, expected):
            fits.append(s)
    assert len(fits) == 1, fits
    return fits[0]


def test_time_shift_moves_each_real_clip_by_its_own_whole_number_of_samples_with_zero_fill():
    waves = real_words(32)
    augment = WaveAugment(torch.zeros(RATE), AugmentConfig(time_shift_ms=100.0))
    assert augment.max_shift == 1600  # 100 ms at 16 kHz
    shifted = augment.shift(waves, torch.Generator().manual_seed(0))
    shifts = [shift_of(waves[i], shifted[i], 1600) for i in range(len(waves))]
    # drawn per clip over the whole range, both ways
    assert len(set(shifts)) > 20 and min(shifts) < -800 and max(shifts) > 800, shifts
    assert torch.equal(WaveAugment(torch.zeros(RATE), AugmentConfig(time_shift_ms=0.0)).shift(waves), waves)


def best_offset(noise: np.ndarray, added: np.ndarray) -> int:
    """Where in ``noise`` the segment most like ``added`` starts (normalised cross-correlation)."""
    from scipy.signal import correlate

    dots = correlate(noise, added, mode="valid", method="fft")
    # each segment's energy from running sums (np.convolve with a ones kernel calls BLAS once per output sample:
    # seconds on an idle machine, over ten minutes beside another job as BLAS's threads wait on each other)
    running = np.concatenate([[0.0], np.cumsum(noise.astype(np.float64) ** 2)])
    energy = running[len(added) :] - running[: -len(added)]
    return int(np.argmax(dots / np.sqrt(np.maximum(energy, 1e-12))))


def test_noise_added_is_a_volume_times_one_segment_of_the_noise():
    """TF's recipe: with probability 0.8 a word gets ``volume x`` a segment of the background noise, volume from
    U(0, 0.1); a ``_silence_`` example always gets it, volume from U(0, 1). Recovered from the output alone."""
    noise = np.concatenate([load_audio(SC_V2_TEST / "_silence_" / name) for name in ("1037.wav", "1057.wav", "1060.wav")])
    words = real_words(48) * 0.5  # room for the noise below full scale: no clipping to undo
    waves = torch.cat([words, torch.zeros(16, RATE)])
    silence = 0
    labels = torch.tensor([2] * 48 + [silence] * 16)
    config = AugmentConfig(time_shift_ms=0.0, speed=0.0, place_probability=0.0)
    augment = WaveAugment(torch.from_numpy(noise), config, silence_label=silence)
    out, _ = augment(waves, labels, torch.Generator().manual_seed(0))
    added = (out - waves).numpy()
    volumes = []
    for row in added:
        if not row.any():
            volumes.append(0.0)  # not mixed
            continue
        offset = best_offset(noise, row)
        segment = noise[offset : offset + RATE]
        volume = float(row @ segment / (segment @ segment))
        np.testing.assert_allclose(row, volume * segment, atol=1e-6)  # the whole difference, nothing else
        volumes.append(volume)
    words_v, silence_v = np.array(volumes[:48]), np.array(volumes[48:])
    assert ((words_v >= 0) & (words_v <= 0.1)).all() and ((silence_v > 0) & (silence_v <= 1.0)).all()
    assert 3 <= int((words_v == 0).sum()) <= 18  # about a fifth of the words get no noise
    assert silence_v.max() > 0.3 and words_v.max() > 0.05  # each drawn over its own range


def test_noise_peak_brings_each_quiet_noise_segment_to_full_scale_before_its_volume():
    """``noise_peak``: the segment is scaled to a peak of 1 first (as the stream test's background), so the noise a
    word gets peaks at exactly its volume, whatever the level of the recording; real _silence_ clips here peak far
    below 1, and without it the same volumes give far quieter noise."""
    noise = np.concatenate([load_audio(SC_V2_TEST / "_silence_" / name) for name in ("1057.wav", "1097.wav", "1177.wav")])
    assert np.abs(noise).max() < 0.15  # a quiet recording: the case the option is for
    words = real_words(48) * 0.5
    labels = torch.tensor([2] * 48)
    peaks = {}
    for noise_peak in (False, True):
        config = AugmentConfig(time_shift_ms=0.0, speed=0.0, place_probability=0.0, noise_probability=1.0,
                               noise_peak=noise_peak)
        augment = WaveAugment(torch.from_numpy(noise), config, silence_label=0)
        added = (augment(words, labels, torch.Generator().manual_seed(0))[0] - words).numpy()
        peaks[noise_peak] = np.abs(added).max(axis=1)
        if noise_peak:
            for row in added:
                offset = best_offset(noise, row)
                segment = noise[offset : offset + RATE]
                volume = float(np.abs(row).max())
                np.testing.assert_allclose(row, volume * segment / np.abs(segment).max(), atol=1e-6)
    assert (peaks[True] <= 0.1 + 1e-6).all() and peaks[True].max() > 0.05
    # same draws, same segments: only the scale differs, by 1 / the segment's peak (> 6 for these clips)
    assert (peaks[True] > 6 * peaks[False]).all()


def test_recent_part_of_a_long_window_keeps_new_words_and_relabels_old_ones():
    words = real_words(48)
    waves = torch.cat([torch.zeros(48, RATE // 2), words, torch.zeros(48, RATE // 2)], dim=1)  # 2 s, word centred
    silence, unknown, word = 0, 1, 2
    labels = torch.full((48,), word)
    config = AugmentConfig(place_probability=0.5, stale_probability=0.3, recent_ms=1000.0)
    augment = WaveAugment(torch.zeros(RATE), config, silence_label=silence, unknown_label=unknown)
    out, new_labels, moved = augment.stream_windows(waves, labels, torch.Generator().manual_seed(0))
    start, end = speech_bounds(out)
    old = new_labels == unknown
    placed = moved & ~old
    assert 6 <= int(old.sum()) <= 26 and 12 <= int(placed.sum()) <= 36
    samples = waves.shape[1]
    # old words end before the recent second and its margin; placed words end inside the recent second
    assert (end[old] <= samples - (1000 + STALE_MARGIN_MS) * RATE / 1000 + 1).all()
    assert (end[placed] >= samples - RATE).all()
    for bad in ({"stale_probability": 0.2}, {"recent_ms": 0.0},
                {"place_probability": 0.6, "stale_probability": 0.5, "recent_ms": 1000.0}):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)


def schroeder_rt60(response: np.ndarray, rate: int) -> float:
    """Reverberation time of an impulse response from the slope of its backward-integrated energy
    (Schroeder 1965) between -5 and -25 dB, extrapolated to 60 dB (T20)."""
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    db = 10 * np.log10(energy / energy[0])
    t = np.arange(len(db)) / rate
    fit = (db <= -5) & (db >= -25)
    slope = np.polyfit(t[fit], db[fit], 1)[0]
    return -60.0 / slope


def test_room_responses_decay_at_their_drawn_reverberation_time_and_ratio():
    responses, rt60 = room_responses(16, RATE, (0.2, 0.7), (3.0, 3.0), torch.Generator().manual_seed(0))
    assert responses.shape == (16, int(0.7 * RATE)) and float(rt60.min()) >= 0.2 and float(rt60.max()) <= 0.7
    for response, drawn in zip(responses.numpy().astype(np.float64), rt60.tolist(), strict=True):
        assert abs(schroeder_rt60(response, RATE) - drawn) < 0.15 * drawn, drawn
        tail = float((response[1:] ** 2).sum())
        assert abs(10 * np.log10(response[0] ** 2 / tail) - 3.0) < 1e-3  # the direct-to-reverberant ratio asked for


def test_reverberation_spreads_real_words_in_time_and_keeps_their_level():
    waves = real_words(16)
    labels = torch.zeros(16, dtype=torch.long)
    augment = WaveAugment(torch.zeros(RATE), AugmentConfig(reverb_probability=1.0, reverb_rt60=(0.5, 0.7)))
    out = augment.reverberate(waves, labels, torch.Generator().manual_seed(0))
    assert out.shape == waves.shape and torch.isfinite(out).all()
    assert torch.allclose(out.square().mean(1).sqrt(), waves.square().mean(1).sqrt(), rtol=1e-3)
    start, end = speech_bounds(waves)
    after = [(end[i] + 1600 < RATE - 1600) for i in range(16)]  # clips with room after the word
    spread = [float(out[i, end[i] + 800 : end[i] + 2400].square().mean() / waves[i, end[i] + 800 : end[i] + 2400]
                    .square().mean().clamp_min(1e-12)) for i in range(16) if after[i]]
    # the tail rings on after the word ends (over the recording's own room tone and noise floor)
    assert len(spread) >= 4 and np.median(spread) > 2, spread
    # the direct path keeps the word where it was: the reverberant clip starts where the dry one does
    assert (speech_bounds(out)[0] - start).abs().max() <= 800


def test_reverberation_off_changes_nothing_and_never_touches_silence():
    waves = real_words(8)
    assert WaveAugment(torch.zeros(RATE), AugmentConfig()).reverberate(waves) is waves
    augment = WaveAugment(torch.zeros(RATE), AugmentConfig(reverb_probability=1.0), silence_label=0)
    labels = torch.tensor([0, 1] * 4)
    out = augment.reverberate(waves, labels, torch.Generator().manual_seed(0))
    assert torch.equal(out[labels == 0], waves[labels == 0]) and not torch.equal(out[labels == 1], waves[labels == 1])


def test_gain_scales_real_words_within_the_range_keeps_peaks_in_range_and_never_touches_silence():
    waves = real_words(16)
    labels = torch.tensor([0, 1] * 8)
    assert WaveAugment(torch.zeros(RATE), AugmentConfig()).gain(waves, labels) is waves  # off by default
    quieter = WaveAugment(torch.zeros(RATE), AugmentConfig(gain_db=(-12.0, -12.0)), silence_label=0)
    out = quieter.gain(waves, labels, torch.Generator().manual_seed(0))
    ratio = 10 ** (-12 / 20)
    assert torch.allclose(out[labels == 1], waves[labels == 1] * ratio) and torch.equal(out[labels == 0], waves[labels == 0])
    spread = WaveAugment(torch.zeros(RATE), AugmentConfig(gain_db=(-20.0, 20.0)))
    out = spread.gain(waves, None, torch.Generator().manual_seed(1))
    peak_in, peak_out = waves.abs().amax(1), out.abs().amax(1)
    assert (peak_out <= 1.0 + 1e-6).all()  # louder is capped at full scale
    db = 20 * torch.log10(peak_out / peak_in)
    assert (db >= -20 - 1e-3).all() and (db <= 20 + 1e-3).all() and db.min() < -5 and db.max() > 1
    # in the whole chain (no shift, speed or noise) it is the level change alone: every word scaled by one factor
    # in the range, capped at full scale, silence untouched
    only_gain = AugmentConfig(gain_db=(-12.0, 6.0), time_shift_ms=0.0, speed=0.0, place_probability=0.0,
                              noise_probability=0.0, silence_volume=0.0)
    mixed, _ = WaveAugment(torch.zeros(RATE), only_gain, silence_label=0)(waves, labels, torch.Generator().manual_seed(2))
    assert torch.equal(mixed[labels == 0], waves[labels == 0])
    factor = (mixed * waves).sum(1) / waves.square().sum(1)
    assert torch.allclose(mixed, factor[:, None] * waves, atol=1e-6)
    words = factor[labels == 1]
    cap = 1.0 / waves[labels == 1].abs().amax(1)
    assert (words >= 10 ** (-12 / 20) - 1e-5).all() and (words <= torch.minimum(cap, torch.tensor(10 ** (6 / 20))) + 1e-5).all()
    with pytest.raises(ValueError, match="gain_db must be a range"):
        AugmentConfig(gain_db=(6.0, -6.0))
