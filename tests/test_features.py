"""The MFCC front end: reference equality with librosa, frame locality (what streaming relies on), normaliser."""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
import torch
from conftest import SC_V2_TEST

from speech.audio.io import load_audio
from speech.frontend.features import FrontEnd, FrontEndConfig, SpecAugment, SpecAugmentConfig


def real_clips(n: int = 4) -> np.ndarray:
    paths = sorted((SC_V2_TEST / "yes").glob("*.wav"))[:n]
    return np.stack([load_audio(p) for p in paths])


def test_mfcc_matches_librosa_reference():
    config = FrontEndConfig()
    frontend = FrontEnd(config)
    wave = real_clips(1)[0]
    ours = frontend.mfcc(torch.from_numpy(wave)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(
        y=wave, sr=16000, n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length,
        center=False, n_mels=config.n_mels, fmin=config.f_min, fmax=config.f_max, power=2.0,
    )
    reference = scipy.fft.dct(np.log(np.maximum(mel, config.log_floor)), axis=0, norm="ortho")[: config.n_mfcc].T
    assert ours.shape == (config.num_frames(16000), config.n_mfcc) == (97, 40)
    assert np.abs(ours - reference).max() < 1e-3 * np.abs(reference).max()


def test_fast_power_spectrum_equals_torchaudio_melspectrogram():
    """mfcc() squares re and im itself (skipping |X|'s square root); it must equal torchaudio's own transform."""
    frontend = FrontEnd()
    waves = torch.from_numpy(real_clips(3))
    with torch.no_grad():
        reference = torch.log(frontend.melspec(waves).clamp_min(frontend.config.log_floor))
        reference = torch.matmul(reference.transpose(1, 2), frontend.dct)
        ours = frontend.mfcc(waves)
    assert ours.shape == reference.shape == (3, 97, 40)
    assert (ours - reference).abs().max() < 1e-4


def test_frames_depend_only_on_their_own_samples():
    """Frame i of a long signal equals frame i of any slice that starts on a hop boundary."""
    frontend = FrontEnd()
    c = frontend.config
    long = torch.from_numpy(np.concatenate(real_clips(2)))
    whole = frontend.mfcc(long[None])[0]
    start_frame = 37
    piece = long[start_frame * c.hop_length : start_frame * c.hop_length + 16000]
    part = frontend.mfcc(piece[None])[0]
    assert torch.allclose(part, whole[start_frame : start_frame + part.shape[0]], atol=1e-4)


def test_normaliser_is_fitted_and_saved_in_state_dict():
    frontend = FrontEnd()
    waves = torch.from_numpy(real_clips(4))
    assert not bool(frontend.fitted)
    frontend.fit_normaliser(waves, batch_size=3)
    feats = frontend(waves)
    assert bool(frontend.fitted)
    assert feats.mean(dim=(0, 1)).abs().max() < 1e-3
    assert (feats.std(dim=(0, 1)) - 1).abs().max() < 1e-2
    restored = FrontEnd()
    restored.load_state_dict(frontend.state_dict())
    assert torch.equal(restored(waves), feats)


def test_spec_augment_masks_only_in_training():
    feats = torch.randn(8, 97, 40)
    augment = SpecAugment(SpecAugmentConfig(freq_masks=2, freq_width=8, time_masks=2, time_width=20))
    augment.eval()
    assert torch.equal(augment(feats), feats)
    augment.train()
    torch.manual_seed(0)
    masked = augment(feats)
    assert masked.shape == feats.shape
    assert (masked == 0).sum() > 0
    assert not torch.equal(masked[0] == 0, masked[1] == 0)  # masks are drawn per example


def test_vocal_tract_warp_moves_the_spectrum_as_resampling_does():
    """Warping by ``a`` moves a real word's spectral envelope where playing it ``a`` times faster moves it (below
    the 4.8 kHz knee), while a factor of 1 changes nothing."""
    frontend = FrontEnd()
    waves = torch.from_numpy(real_clips(4))
    assert torch.equal(frontend.mfcc(waves, torch.ones(4)), frontend.mfcc(waves))
    to_log_mel = torch.linalg.pinv(frontend.dct)  # the smoothed log-mel envelope the 40 MFCCs hold

    def envelope(w: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        log_mel = frontend.mfcc(w, warp) @ to_log_mel
        return torch.log(torch.exp(log_mel).mean(dim=1))[:, :60]  # long-term spectrum, mel bins below ~4.6 kHz

    for factor in (0.88, 1.12):
        faster = [librosa.resample(w, orig_sr=16_000, target_sr=round(16_000 / factor))[:16_000] for w in waves.numpy()]
        faster = torch.from_numpy(np.stack([np.pad(w, (0, 16_000 - len(w))) for w in faster]))
        target = envelope(faster)
        warped = (envelope(waves, torch.full((4,), factor)) - target).abs().mean(dim=1)
        plain = (envelope(waves) - target).abs().mean(dim=1)
        assert (warped < plain / 3).all(), (factor, warped, plain)


def test_vocal_tract_warp_is_drawn_per_example_in_training_only():
    augment = SpecAugment(SpecAugmentConfig(vtlp=0.1))
    augment.eval()
    assert augment.warp_factors(8, torch.device("cpu")) is None
    augment.train()
    factors = augment.warp_factors(64, torch.device("cpu"))
    assert factors.shape == (64,) and factors.min() >= 0.9 and factors.max() <= 1.1 and factors.std() > 0.03
    assert SpecAugment(SpecAugmentConfig()).train().warp_factors(8, torch.device("cpu")) is None
