"""The streaming engine on real clips: resampler and MFCC chunking invariance, window = offline features,
energy gate, and real keywords heard by the trained tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import FSDD, LABELS_12, clips_the_model_knows

from speech.audio.io import AudioError, load_audio, read_audio, resample, to_mono
from speech.audio.resample import StreamResampler
from speech.classifiers.recurrent import RecurrentConfig
from speech.errors import SettingError
from speech.frontend.mfcc import FrontEndConfig
from speech.model.recogniser import Recogniser
from speech.runtime.scorers import TorchScorer, load_scorer
from speech.streaming import (
    IncrementalFeatures,
    StreamingConfig,
    StreamingRecogniser,
    stream_array,
)


def random_chunks(wave: np.ndarray, rng: np.random.Generator, high: int = 4000):
    start = 0
    while start < wave.shape[0]:
        size = int(rng.integers(1, high))
        yield wave[start : start + size]
        start += size


@pytest.fixture(scope="module")
def speech_stream(sc_v2_clips) -> np.ndarray:
    """About 6 s of real speech: six keyword clips back to back (16 kHz float32)."""
    words = ["yes", "no", "up", "down", "left", "right"]
    return np.concatenate([load_audio(sc_v2_clips[w][5]) for w in words])


@pytest.fixture(scope="module")
def scorer(sc_v2_clips) -> TorchScorer:
    """An untrained classifier behind a front end whose normaliser is fitted on real clips (fast to build)."""
    torch.manual_seed(0)
    model = Recogniser(LABELS_12, classifier=RecurrentConfig(hidden_size=32, num_layers=1, input_channels=16))
    waves = torch.from_numpy(np.stack([load_audio(sc_v2_clips[w][i]) for w in LABELS_12[2:] for i in range(4)]))
    model.frontend.fit_normaliser(waves)
    return TorchScorer(model)


@pytest.mark.parametrize("rate", [48_000, 44_100, 22_050, 8_000, 16_000])
def test_resampler_is_chunk_invariant(rate, speech_stream):
    wave = speech_stream[: 3 * 16000] if rate == 16_000 else resample(speech_stream[: 3 * 16000], 16000, rate)
    whole = StreamResampler(rate, 16000)
    expected = np.concatenate([whole.process(wave), whole.finish()])
    chunked = StreamResampler(rate, 16000)
    parts = [chunked.process(c) for c in random_chunks(wave, np.random.default_rng(rate), 3000)]
    got = np.concatenate(parts + [chunked.finish()])
    assert got.shape == expected.shape == (int(np.ceil(wave.shape[0] * 16000 / rate)),)
    np.testing.assert_array_equal(got, expected)


def test_resampler_quality():
    for rate in (48_000, 44_100, 8_000):
        t = np.arange(2 * rate) / rate
        r = StreamResampler(rate, 16000)
        out = np.concatenate([r.process(np.sin(2 * np.pi * 1000 * t)), r.finish()])
        ideal = np.sin(2 * np.pi * 1000 * np.arange(out.shape[0]) / 16000)
        assert np.abs(out - ideal)[500:-500].max() < 1e-4  # no delay, no gain error
    # a real 8 kHz recording (FSDD) comes out close to scipy's offline polyphase resampler
    from scipy.signal import resample_poly

    path = sorted((FSDD / "seven").glob("*.wav"))[0]
    data, rate = read_audio(path)
    assert rate == 8000
    mono = to_mono(data)
    r = StreamResampler(rate, 16000)
    ours = np.concatenate([r.process(mono), r.finish()])
    ref = resample_poly(mono.astype(np.float64), 2, 1)
    assert ours.shape == ref.shape
    # (they differ mostly just below 4 kHz, where soxr's pass band (0.91 x Nyquist) ends below scipy's)
    assert np.sqrt(np.mean((ours - ref) ** 2)) < 0.05 * np.sqrt(np.mean(ref**2))


def test_incremental_mfcc_equals_offline_with_random_chunks(scorer, speech_stream):
    front = scorer.frontend
    with torch.inference_mode():
        offline = front(torch.from_numpy(speech_stream)[None])[0].numpy()
    for seed in range(3):
        inc = IncrementalFeatures(scorer.features, front.config)
        feats = [inc.push(c)[0] for c in random_chunks(speech_stream, np.random.default_rng(seed))]
        streamed = np.concatenate(feats)
        assert streamed.shape == offline.shape
        assert np.abs(streamed - offline).max() < 1e-4


@pytest.mark.parametrize(("hop_ms", "window_ms"), [(20.0, 1000.0), (100.0, 1000.0), (100.0, 1500.0)])
def test_windows_equal_offline_features_and_scores(scorer, speech_stream, hop_ms, window_ms):
    """Every hop scores the model's window (its front end's ``window_ms``) ending at the hop's time."""
    if window_ms != scorer.frontend.config.window_ms:
        longer = Recogniser(LABELS_12, FrontEndConfig(window_ms=window_ms), scorer.recogniser.classifier.config)
        longer.load_state_dict(scorer.recogniser.state_dict())
        scorer = TorchScorer(longer)
    window = int(window_ms * 16)
    speech_stream = speech_stream[: 4 * 16000]  # 4 s: 151 windows at a 20 ms hop
    hops = []
    engine = StreamingRecogniser(scorer, StreamingConfig(hop_ms=hop_ms, gate_db=None, flush_ms=0.0, lead_ms=0.0),
                                on_hop=hops.append)
    for chunk in random_chunks(speech_stream, np.random.default_rng(1)):
        engine.feed(chunk)
    engine.finish()
    hop = int(hop_ms * 16)
    starts = np.array([round(h.time * 16000) - window for h in hops])
    # a window every hop, from the first full window to the end of the stream
    np.testing.assert_array_equal(starts, np.arange(0, speech_stream.shape[0] - window + 1, hop))
    waves = np.stack([speech_stream[s : s + window] for s in starts])
    with torch.inference_mode():
        offline = scorer.frontend(torch.from_numpy(waves)).numpy()
    streamed = np.stack([h.features for h in hops])
    assert streamed.shape == offline.shape == (len(hops), scorer.frontend.config.num_frames(window), 40)
    assert np.abs(streamed - offline).max() < 1e-4
    assert np.abs(np.stack([h.scores for h in hops]) - scorer.scores(waves)).max() < 1e-4
    assert engine.windows_scored == len(hops)


def test_int16_stereo_48k_input_is_downmixed_and_resampled(scorer, speech_stream):
    wave48 = resample(speech_stream, 16000, 48000)
    stereo = np.stack([wave48 * 0.9, wave48 * 0.7], axis=1)  # mono = 0.8 * speech
    pcm = np.round(np.clip(stereo, -1, 1) * 32767).astype(np.int16)
    hops = []
    engine = StreamingRecogniser(scorer, StreamingConfig(gate_db=None, flush_ms=0.0, lead_ms=0.0), input_rate=48_000,
                                on_hop=hops.append)
    for chunk in random_chunks(pcm, np.random.default_rng(2), 5000):
        engine.feed(chunk)
    engine.finish()
    # the same audio resampled in one go, then framed offline
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
    whole = StreamResampler(48_000, 16_000)
    audio16 = np.concatenate([whole.process(mono), whole.finish()])
    starts = [round((h.time - 1.0) * 16000) for h in hops]
    with torch.inference_mode():
        offline = scorer.frontend(torch.from_numpy(np.stack([audio16[s : s + 16000] for s in starts]))).numpy()
    assert len(hops) == 51 and abs(engine.time - speech_stream.shape[0] / 16000) < 1e-3
    assert np.abs(np.stack([h.features for h in hops]) - offline).max() < 1e-4
    # and the resampled speech is the original speech scaled by the downmix (less what lies above 7.5 kHz)
    error = audio16[200:-200] - 0.8 * speech_stream[200:-200]
    assert np.sqrt(np.mean(error**2)) < 0.03 * np.sqrt(np.mean((0.8 * speech_stream) ** 2))


def test_flat_interleaved_pcm_and_bad_input(scorer):
    engine = StreamingRecogniser(scorer, input_rate=16_000)
    assert engine.feed(np.zeros(3200, np.int16), channels=2) == []
    assert engine.time == pytest.approx(0.1)
    with pytest.raises(AudioError, match="channels"):  # input errors are speech.SpeechErrors (issue #36)
        engine.feed(np.zeros(3, np.int16), channels=2)
    with pytest.raises(AudioError, match="int16"):
        engine.feed(np.zeros(10, np.uint8))
    for hop in (15.0, 0.0, -10.0):
        with pytest.raises(SettingError, match="multiple of the 10 ms frame hop"):
            StreamingRecogniser(scorer, StreamingConfig(hop_ms=hop))


def test_energy_gate_keeps_silence_quiet_and_skips_the_model(scorer, sc_v2_clips):
    quiet = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), 5 * 16000).astype(np.float32)  # -60 dBFS hiss
    gated = StreamingRecogniser(scorer, StreamingConfig(gate_db=-45.0, lead_ms=0.0))
    assert stream_array(gated, quiet) == []
    # 41 windows in the 5 s, 10 more in the 1 s of silence that flushes the end: all below the gate
    assert gated.windows_scored == 0 and gated.windows_gated == 51 and gated.model_seconds == 0.0
    assert gated.last.gated and gated.last.scores[LABELS_12.index("_silence_")] == 1.0
    assert gated.last.level_db == -120.0  # the flushing silence is digital zero
    ungated = StreamingRecogniser(scorer, StreamingConfig(gate_db=None, flush_ms=0.0, lead_ms=0.0))
    stream_array(ungated, quiet)
    assert ungated.windows_scored == 41 and -62 < ungated.last.level_db < -58
    # a spoken word lifts the gate for the windows that contain it
    word = load_audio(sc_v2_clips["yes"][0])
    mixed = quiet.copy()
    mixed[32000:48000] += word
    engine = StreamingRecogniser(scorer, StreamingConfig(gate_db=-45.0, flush_ms=0.0, lead_ms=0.0))
    stream_array(engine, mixed)
    assert 0 < engine.windows_scored < 41


def test_trained_model_hears_real_keywords_at_the_right_times(tiny_checkpoint, sc_v2_clips):
    """Clips the tiny model knows offline are detected in a stream, with their labels, near their times."""
    scorer = load_scorer(tiny_checkpoint)
    chosen = clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 4)
    rng = np.random.default_rng(0)
    parts, starts = [np.zeros(16000, np.float32)], []
    for _, path in chosen:
        starts.append(sum(p.size for p in parts) / 16000)
        parts += [load_audio(path), np.zeros(24000, np.float32)]
    wave = np.concatenate(parts) + rng.normal(0, 1e-3, sum(p.size for p in parts)).astype(np.float32)
    engine = StreamingRecogniser(scorer, StreamingConfig(hop_ms=100.0), input_rate=16_000)
    found = stream_array(engine, np.round(wave * 32767).astype(np.int16), 1600)
    assert [d.label for d in found] == [w for w, _ in chosen]
    for d, start in zip(found, starts, strict=True):
        assert start + 0.3 <= d.time <= start + 2.0  # after the word began, within a window and a half
        assert d.score > 0.7


def test_wav_file_at_44k_scores_like_the_16k_original(tiny_checkpoint, sc_v2_clips, tmp_path):
    """A 44.1 kHz stereo file of the same words gives (nearly) the same scores and the same detections."""
    scorer = load_scorer(tiny_checkpoint)
    wave = np.concatenate([np.zeros(8000, np.float32)] + [
        np.concatenate([load_audio(sc_v2_clips[w][i]), np.zeros(16000, np.float32)])
        for w in ("yes", "stop", "off") for i in (0, 1)
    ])
    path = tmp_path / "words44k.wav"
    sf.write(path, np.stack([resample(wave, 16000, 44100)] * 2, axis=1), 44100, subtype="PCM_16")
    base_hops, other_hops = [], []
    base = stream_array(StreamingRecogniser(scorer, on_hop=base_hops.append), wave)
    data, rate = read_audio(path)
    other = stream_array(StreamingRecogniser(scorer, input_rate=rate, on_hop=other_hops.append), data, 4410)
    assert rate == 44100 and len(base_hops) == len(other_hops) == 135  # a hop each 100 ms of 12.5 s + 1 s of flush
    a, b = np.stack([h.scores for h in base_hops]), np.stack([h.scores for h in other_hops])
    assert np.abs(a - b).mean() < 0.03  # two resamplers and 16-bit rounding apart
    assert (a.argmax(axis=1) == b.argmax(axis=1)).mean() > 0.9
    assert base and [d.label for d in other] == [d.label for d in base]
    assert all(abs(x.time - y.time) <= 0.3 for x, y in zip(other, base, strict=True))


def test_end_of_input_is_flushed_so_a_single_clip_is_detected(tiny_checkpoint, sc_v2_clips):
    """A file that is one 1 s clip gives a single window of its own; the 1 s of silence fed at the end gives the
    detector the results it needs. Without the flush (and without the silence taken to come before it), nothing is
    reported."""
    scorer = load_scorer(tiny_checkpoint)
    for word, path in clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3):
        clip = load_audio(path)
        bare = StreamingRecogniser(scorer, StreamingConfig(flush_ms=0.0, lead_ms=0.0))
        assert stream_array(bare, clip) == [] and bare.windows_scored + bare.windows_gated == 1
        hops = []
        engine = StreamingRecogniser(scorer, StreamingConfig(lead_ms=0.0), on_hop=hops.append)
        assert engine.feed(clip) == []
        found = engine.finish()
        assert [d.label for d in found] == [word]
        assert 1.0 < found[0].time <= 2.0 and len(hops) == 11 and engine.time == 2.0
        assert engine.finish() == [] and len(hops) == 11  # a second finish() adds nothing


def test_the_input_follows_silence_so_a_word_at_its_start_is_heard_as_soon_as_it_ends(scorer, tiny_checkpoint,
                                                                                        sc_v2_clips, speech_stream):
    """By default the engine takes a window less one hop of silence to come before the input: the first window
    ends one hop in, each window is the offline features of the zero-padded input, and the windows from the first
    full one on are those of an engine without it. A clip at the very start is then found while it is fed, before
    the flush, within 0.9 s of its start (a model that knows it)."""
    wave = speech_stream[: 3 * 16000]
    hops, plain = [], []
    for config, out in ((StreamingConfig(gate_db=None, flush_ms=0.0), hops),
                        (StreamingConfig(gate_db=None, flush_ms=0.0, lead_ms=0.0), plain)):
        engine = StreamingRecogniser(scorer, config, on_hop=out.append)
        for chunk in random_chunks(wave, np.random.default_rng(3)):
            engine.feed(chunk)
        engine.finish()
    window, lead = 16000, 16000 - 1600
    assert engine.time == 3.0 and [round(h.time, 3) for h in hops] == [round(0.1 * k, 3) for k in range(1, 31)]
    padded = np.concatenate([np.zeros(lead, np.float32), wave])
    waves = np.stack([padded[round(h.time * 16000) + lead - window:][:window] for h in hops])
    with torch.inference_mode():
        offline = scorer.frontend(torch.from_numpy(waves)).numpy()
    assert np.abs(np.stack([h.features for h in hops]) - offline).max() < 1e-4
    full = hops[9:]  # from the first window that holds no lead
    assert len(full) == len(plain) and all(a.time == pytest.approx(b.time) for a, b in zip(full, plain, strict=True))
    assert np.abs(np.stack([h.scores for h in full]) - np.stack([h.scores for h in plain])).max() < 1e-5
    model = load_scorer(tiny_checkpoint)
    for word, path in clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3):
        found = StreamingRecogniser(model).feed(load_audio(path))
        assert [d.label for d in found] == [word] and found[0].time <= 0.9
    with pytest.raises(ValueError, match="lead_ms"):
        StreamingConfig(lead_ms=-1.0)
    with pytest.raises(ValueError, match="flush_ms"):
        StreamingConfig(flush_ms=-1.0)
