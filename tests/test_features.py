"""The MFCC front end: reference equality with librosa, frame locality (what streaming relies on), normaliser."""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
import torch
from conftest import SC_V2_TEST

from speech.audio import load_audio
from speech.features import FrontEnd, FrontEndConfig, SpecAugment, SpecAugmentConfig


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
