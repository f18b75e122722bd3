"""Running a trained model without torch: the NumPy front end, and the base install (onnxruntime + NumPy).

The NumPy front end (speech.frontend.mfcc) must compute the features the PyTorch front end trained on, and ``speech live`` /
``speech.load`` of an ``.onnx`` file must give the same events and probabilities whether or not torch is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from conftest import FSDD, LABELS_12, REPO, SC_V2_TEST, clips_the_model_knows

from speech.audio.io import load_audio, write_wav
from speech.frontend.mfcc import FrontEndConfig, MfccFrontEnd, dct_matrix, fft_window, mel_filterbank
from speech.model.checkpoint import load_recogniser
from speech.runtime.scorers import OnnxScorer, TorchScorer
from speech.streaming.frames import IncrementalFeatures

BASE = [sys.executable, str(REPO / "tests" / "base_install.py")]
FEATURE_TOLERANCE = 1e-4  # max |numpy - torch| of normalised features (torch computes in float32)


def run_base(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*BASE, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def recogniser(tiny_checkpoint):
    return load_recogniser(tiny_checkpoint)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from speech.runtime.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("runtime") / "tiny.onnx")


@pytest.fixture(scope="module")
def stream_wav(tiny_checkpoint, sc_v2_clips, tmp_path_factory) -> Path:
    """12 s of real speech: four words the tiny model knows and four other clips (`_unknown_` words and
    keywords it is unsure of), 0.5 s apart."""
    known = [path for _, path in clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 4)]
    others = [sc_v2_clips["_unknown_"][3], sc_v2_clips["go"][7], sc_v2_clips["_unknown_"][40], sc_v2_clips["up"][2]]
    parts = [np.zeros(8000, np.float32)]
    for path in [p for pair in zip(known, others, strict=True) for p in pair]:
        parts += [load_audio(path), np.zeros(8000, np.float32)]
    path = tmp_path_factory.mktemp("runtime") / "stream.wav"
    write_wav(path, np.concatenate(parts))
    return path


def test_filter_bank_dct_and_window_equal_torchaudios():
    config = FrontEndConfig()
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
        hop_length=config.hop_length, f_min=config.f_min, f_max=config.f_max, n_mels=config.n_mels,
        center=False, norm="slaney", mel_scale="slaney",
    )
    # all three hold float32 values, as torchaudio's do (the filter bank is computed in float64, then rounded)
    assert np.abs(mel_filterbank(config) - ref.mel_scale.fb.double().numpy()).max() < 1e-6
    dct = torchaudio.functional.create_dct(config.n_mfcc, config.n_mels, norm="ortho").double().numpy()
    assert np.abs(dct_matrix(config.n_mfcc, config.n_mels) - dct).max() < 1e-7
    window = torch.hann_window(config.win_length).double().numpy()
    left = (config.n_fft - config.win_length) // 2
    padded = fft_window(config)
    assert np.abs(padded[left : left + config.win_length] - window).max() < 1e-7
    assert not padded[:left].any() and not padded[left + config.win_length :].any()


def test_numpy_front_end_equals_torch_front_end_on_real_clips(recogniser):
    """Every 4th clip of the shared v0.02 test set (all labels, background-noise clips included), an 8 kHz FSDD
    clip resampled, silence and full-scale noise: normalised features within 1e-4 of the PyTorch front end."""
    fe = recogniser.frontend
    numpy_fe = MfccFrontEnd(fe.config, fe.mean.numpy(), fe.std.numpy())
    paths = sorted(SC_V2_TEST.glob("*/*.wav"))[::4] + sorted((FSDD / "seven").glob("*.wav"))[:2]
    waves = np.stack([load_audio(p) for p in paths])
    waves = np.concatenate([waves, np.zeros((1, 16000), np.float32),
                            np.random.default_rng(0).uniform(-1, 1, (1, 16000)).astype(np.float32)])
    worst = 0.0
    for start in range(0, len(waves), 200):
        batch = waves[start : start + 200]
        with torch.inference_mode():
            expected = fe(torch.from_numpy(batch)).numpy()
        got = numpy_fe(batch)
        assert got.shape == expected.shape == (len(batch), 97, fe.config.n_mfcc) and got.dtype == np.float32
        worst = max(worst, float(np.abs(got - expected).max()))
    assert len(waves) > 800
    assert worst < FEATURE_TOLERANCE


def test_numpy_incremental_features_are_chunk_invariant(tiny_onnx):
    """The streaming features of the ONNX back end, pushed in random chunks, equal its offline features."""
    scorer = OnnxScorer(tiny_onnx)
    wave = np.concatenate([load_audio(p) for p in sorted((SC_V2_TEST / "left").glob("*.wav"))[:4]])
    offline = scorer.features(wave[None])[0]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        inc = IncrementalFeatures(scorer.features, scorer.frontend.config)
        pieces, start = [], 0
        while start < wave.size:
            size = int(rng.integers(1, 3000))
            pieces.append(inc.push(wave[start : start + size])[0])
            start += size
        streamed = np.concatenate(pieces)
        assert streamed.shape == offline.shape
        assert np.abs(streamed - offline).max() < 1e-5


def test_live_on_the_base_install_gives_the_full_installs_events(tiny_checkpoint, tiny_onnx, stream_wav, capsys):
    """``speech live MODEL.onnx --wav`` with torch unimportable prints exactly the events of the full install,
    and the same words at the same times as the checkpoint run in PyTorch."""
    from speech.cli import main

    base = run_base("live", str(tiny_onnx), "--wav", str(stream_wav), "--json")
    assert base.returncode == 0, base.stderr
    base_events = events(base.stdout)
    assert main(["live", str(tiny_onnx), "--wav", str(stream_wav), "--json"]) == 0
    assert base_events == events(capsys.readouterr().out)
    assert main(["live", str(tiny_checkpoint), "--wav", str(stream_wav), "--json"]) == 0
    torch_events = events(capsys.readouterr().out)
    assert len(base_events) >= 4
    assert [(e["label"], e["time"]) for e in base_events] == [(e["label"], e["time"]) for e in torch_events]
    assert np.abs(np.array([e["score"] for e in base_events]) - [e["score"] for e in torch_events]).max() < 1e-3


def test_the_base_install_reads_stdin_and_uses_calibrated_thresholds(tiny_onnx, stream_wav, tmp_path, capsys):
    """48 kHz stereo int16 PCM on stdin, and an .onnx model with calibrated per-keyword thresholds (one keyword
    never reported): the base install prints the full install's events and names the thresholds it uses."""
    from speech.audio.io import float_to_int16, resample
    from speech.cli import main
    from speech.evaluation.streams.fitting import store_detection

    assert main(["live", str(tiny_onnx), "--wav", str(stream_wav), "--json"]) == 0
    heard = [e["label"] for e in events(capsys.readouterr().out)]
    section = {"version": 1, "thresholds": {w: (1.0 if w == heard[0] else 0.5) for w in LABELS_12[2:]},
               "threshold": 0.7, "settings": {"hop_ms": 100.0}}
    calibrated = store_detection(tiny_onnx, section, out=tmp_path / "calibrated.onnx")
    wave = load_audio(stream_wav, samples=None)
    stereo = np.repeat(float_to_int16(resample(wave, 16000, 48000))[:, None], 2, axis=1)
    live = ["live", str(calibrated), "--stdin", "--rate", "48000", "--channels", "2", "--json"]
    runs = [subprocess.run([*prefix, *live], input=stereo.tobytes(), capture_output=True, timeout=120, cwd=REPO)
            for prefix in (BASE, [sys.executable, "-m", "speech"])]
    for run in runs:
        assert run.returncode == 0, run.stderr.decode()
        assert "thresholds: calibrated per keyword" in run.stderr.decode()
    base, full = (events(run.stdout.decode()) for run in runs)
    assert base == full and len(base) >= 3
    assert heard[0] not in [e["label"] for e in base]


def test_predict_on_the_base_install_gives_the_full_installs_probabilities(tiny_checkpoint, tiny_onnx, sc_v2_clips,
                                                                           stream_wav):
    clips = [sc_v2_clips[label][5] for label in LABELS_12]
    code = (
        "import json, sys, speech\n"
        f"model = speech.load({str(tiny_onnx)!r})\n"
        f"clips = {[str(p) for p in clips]!r}\n"
        "import soundfile as sf\n"
        f"wave, rate = sf.read({str(stream_wav)!r}, dtype='int16')\n"
        "found = [(d.label, d.time) for d in model.stream([wave[i:i + 700] for i in range(0, len(wave), 700)], rate)]\n"
        "print(json.dumps({'batch': model.predict_batch(clips).tolist(), 'one': model.predict(clips[2]),\n"
        "                  'stream': found,\n"
        "                  'torch': [m for m in ('torch', 'torchaudio', 'lightning') if sys.modules.get(m)]}))\n"
    )
    result = run_base("-c", code)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["torch"] == []
    import speech

    full = speech.load(tiny_onnx).predict_batch(clips)
    assert np.abs(np.array(got["batch"]) - full).max() < 1e-5
    assert got["one"] == pytest.approx(dict(zip(LABELS_12, full[2].tolist(), strict=True)), abs=1e-5)
    full_stream = [[d.label, d.time] for d in speech.load(tiny_checkpoint).stream([load_audio(stream_wav, samples=None)])]
    assert got["stream"] == full_stream and len(full_stream) >= 4
    in_torch = TorchScorer(load_recogniser(tiny_checkpoint)).scores(np.stack([load_audio(p) for p in clips]))
    assert np.abs(np.array(got["batch"]) - in_torch).max() < 1e-4  # the ONNX export check's tolerance


def test_the_base_install_refuses_checkpoints_and_training_commands_in_one_line(tiny_checkpoint, stream_wav, tmp_path):
    live = run_base("live", str(tiny_checkpoint), "--wav", str(stream_wav))
    assert live.returncode == 2 and live.stdout == ""
    assert live.stderr.strip().count("\n") == 0 and "Traceback" not in live.stderr
    assert "training extra" in live.stderr and "pip install 'speech[train]'" in live.stderr
    assert "speech export" in live.stderr and str(tiny_checkpoint) in live.stderr
    for command in (["train", "--help"], ["evaluate", str(tiny_checkpoint)], ["export", str(tiny_checkpoint)],
                    ["stream-test", str(tiny_checkpoint)], ["calibrate", str(tiny_checkpoint)], ["plot", "x"]):
        result = run_base(*command)
        assert result.returncode == 2, command
        assert result.stderr.strip() == (
            f"speech {command[0]}: error: this command needs the training extra (torch is not installed): "
            "pip install 'speech[train]'"
        )
    code = "import speech\nspeech.load(" + repr(str(tiny_checkpoint)) + ")"
    api = run_base("-c", code)
    assert api.returncode == 1 and "MissingExtraError" in api.stderr and "speech export" in api.stderr
    # the data tools run on the base install
    summary = run_base("data", "summary", str(REPO.parent / "shared" / "data" / "sc-v1-sample"))
    assert summary.returncode == 0 and "bad files skipped: 0" in summary.stdout


def test_a_fresh_pip_install_of_the_package_runs_live_without_torch(tiny_onnx, stream_wav, tmp_path, capsys):
    """``pip install .`` into a new virtual environment: no torch in it, ``speech live`` prints the full install's
    events, and the packaged model is installed with it (``speech live`` with no model runs it)."""
    env_dir = tmp_path / "base-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert pip.returncode == 0, pip.stdout + pip.stderr
    for module in ("torch", "torchaudio", "lightning", "onnx", "matplotlib", "librosa"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0, f"{module} was installed by the base install"
    live = subprocess.run([str(env_dir / "bin" / "speech"), "live", str(tiny_onnx), "--wav", str(stream_wav), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    from speech.cli import main

    assert main(["live", str(tiny_onnx), "--wav", str(stream_wav), "--json"]) == 0
    assert events(live.stdout) == events(capsys.readouterr().out) and len(events(live.stdout)) >= 4
    # the packaged model came with it (package data): 'speech live' with no model runs it, as it runs here
    from speech.models import MODELS_DIR

    where = subprocess.run([str(python), "-c", "import speech.models as m; print(m.MODELS_DIR)"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    installed = Path(where.stdout.strip())
    assert installed.is_relative_to(env_dir) and installed != MODELS_DIR
    assert (installed / "commands.onnx").read_bytes() == (MODELS_DIR / "commands.onnx").read_bytes()
    assert (installed / "commands.json").read_bytes() == (MODELS_DIR / "commands.json").read_bytes()
    live = subprocess.run([str(env_dir / "bin" / "speech"), "live", "--wav", str(stream_wav), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert live.returncode == 0 and "speech live: packaged model 'commands';" in live.stderr, live.stderr
    assert main(["live", "--wav", str(stream_wav), "--json"]) == 0
    assert events(live.stdout) == events(capsys.readouterr().out) and len(events(live.stdout)) >= 2


def test_an_ensemble_exported_as_one_file_runs_on_the_base_install(tiny_checkpoint, tmp_path, sc_v2_clips):
    from speech.model.checkpoint import save_checkpoint
    from speech.runtime.export import export_onnx

    other = load_recogniser(tiny_checkpoint)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in other.classifier.parameters():
            p += 0.05 * torch.randn_like(p)
    ensemble = export_onnx([tiny_checkpoint, save_checkpoint(other, tmp_path / "other.ckpt")], tmp_path / "both.onnx")
    clips = [str(sc_v2_clips[label][9]) for label in LABELS_12]
    code = f"import json, speech\nprint(json.dumps(speech.load({str(ensemble)!r}).predict_batch({clips!r}).tolist()))"
    result = run_base("-c", code)
    assert result.returncode == 0, result.stderr
    import speech

    assert np.abs(np.array(json.loads(result.stdout)) - speech.load(ensemble).predict_batch(clips)).max() < 1e-6
