"""A model of a longer window (``--model.frontend.window_ms 1500``): training decodes its clips and running-speech
windows to that length, and evaluation, the Python API, ONNX export and streaming score that same window; and
``Model.streamer`` driven as a user drives it (any chunks, any rate, ``finish()``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import LABELS_12, SHARED_DATA, clips_the_model_knows, train_args

import speech
from speech.audio.activity import speech_bounds
from speech.audio.io import fit_window, load_audio, resample
from speech.cli import main
from speech.cli.train import main as train_main
from speech.data.datamodule import SpeechCommandsDataModule
from speech.data.running_windows import RunningSpeechSource
from speech.model.checkpoint import load_recogniser
from speech.model.ensemble import EnsembleError, load_ensemble
from speech.runtime.export import export_onnx

WINDOW = 24_000  # 1.5 s at 16 kHz


@pytest.fixture(scope="module")
def long_run(small_tree, cache_dir, tmp_path_factory):
    """A 2-epoch run of a small model with 1.5 s windows (cpu-small.yaml: with running speech)."""
    runs = tmp_path_factory.mktemp("runs-1500")
    code = train_main(train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "2", "--model.lr", "0.01",
                                 "--model.frontend.window_ms", "1500"))
    assert code == 0
    return next((runs / "test" / "version_0" / "checkpoints").glob("best-*.ckpt"))


def test_training_decodes_the_model_window_and_the_checkpoint_carries_it(long_run, small_tree, cache_dir):
    recogniser = load_recogniser(long_run)
    assert recogniser.frontend.config.window_ms == 1500.0 and recogniser.frontend.config.window_samples == WINDOW
    # caches written by `speech train` runs (before anything below): --model.frontend.window_ms reached the data module
    made = [json.loads(path.read_text()) for path in cache_dir.glob("waves-*.json")]
    assert sum(m["samples"] == WINDOW for m in made) >= 3, made  # training, validation, testing
    data = SpeechCommandsDataModule(str(small_tree), split_rule="speaker", validation_percent=10.0,
                                    testing_percent=20.0, cache_dir=str(cache_dir), window_samples=WINDOW)
    data.setup("validate")
    waves, _ = data.on_after_batch_transfer(next(iter(data.val_dataloader())), 0)
    examples = data.data["validation"].examples[: len(waves)]
    # a 1 s clip sits zero-padded in the middle of the window, as the API pads one it is given
    served = np.stack([fit_window(load_audio(ex.path), WINDOW) if ex.path else np.zeros(WINDOW, np.float32)
                       for ex in examples])
    assert waves.shape[1] == WINDOW and np.array_equal(waves.numpy(), served)
    assert np.abs(served[:, :4000]).max() == 0 and np.abs(served[:, -4000:]).max() == 0  # 0.25 s either side
    # the running-speech windows are cut at the model's length, not padded 1 s ones
    running = RunningSpeechSource(SHARED_DATA / "librispeech-mini", samples=WINDOW).windows(LABELS_12, cache_dir)
    assert running.shape == (1500, WINDOW) and (np.abs(running[:, :4000]).max(axis=1) > 0).mean() > 0.9


def test_evaluation_api_onnx_and_streaming_score_the_model_window(long_run, small_tree, tmp_path, capsys):
    model = speech.load(long_run)
    assert model.window_samples == WINDOW
    clips = sorted((small_tree / "yes").glob("*.wav"))[:3]
    one_second = [load_audio(path) for path in clips]
    padded = np.stack([fit_window(c, WINDOW) for c in one_second])
    np.testing.assert_allclose(model.predict_batch(one_second), model.scorer.scores(padded), atol=1e-6)

    onnx_path = export_onnx(long_run, tmp_path / "model.onnx")
    onnx_model = speech.load(onnx_path)
    assert onnx_model.window_samples == WINDOW
    np.testing.assert_allclose(onnx_model.predict_batch(one_second), model.predict_batch(one_second), atol=1e-4)

    # the engine scores the last 1.5 s at every hop: the hop a clip's window ends on equals the padded clip's score
    stream = padded[0]  # 1.5 s: its first full window ends at 1.5 s (the hops before it hold the lead's silence)
    engine = onnx_model.streamer()
    hops = []
    engine.on_hop = hops.append
    engine.feed(stream)
    assert engine.window_seconds == 1.5
    assert [round(h.time, 3) for h in hops] == [round(0.1 * k, 3) for k in range(1, 16)] and not hops[-1].gated
    np.testing.assert_allclose(hops[-1].scores, onnx_model.scorer.scores(padded[:1])[0], atol=1e-4)

    # speech evaluate decodes the clips to the model's window: its confusion matrix is the padded clips' one
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(long_run), "--data", str(small_tree), "--split", "validation", "--json",
                 str(report), "--out", str(tmp_path / "eval")]) == 0
    capsys.readouterr()
    result = json.loads(report.read_text())
    data = SpeechCommandsDataModule(str(small_tree), split_rule="speaker", validation_percent=10.0,
                                    testing_percent=20.0, window_samples=WINDOW)
    waves = [fit_window(load_audio(ex.path), WINDOW) if ex.path else np.zeros(WINDOW, np.float32)
             for ex in data.examples("validation")]
    predicted = model.scorer.scores(np.stack(waves)).argmax(axis=1)
    matrix = np.zeros((len(LABELS_12), len(LABELS_12)), np.int64)
    np.add.at(matrix, ([ex.label for ex in data.examples("validation")], predicted), 1)
    assert result["clips"] == len(waves) and np.array_equal(np.array(result["confusion"]["matrix"]), matrix)


def test_teachers_and_ensemble_members_of_another_window_are_refused(long_run, small_tree, cache_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = train_main(train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "1",
                                 "--model.frontend.window_ms", "1000"))
    assert code == 0, capsys.readouterr().err[-2000:]
    teacher = next((runs / "test" / "version_0" / "checkpoints").glob("best-*.ckpt"))  # a 1 s model, same data
    before = teacher.read_bytes()
    code = train_main(train_args(small_tree, runs, cache_dir, "--trainer.max_epochs", "1",
                                 "--model.frontend.window_ms", "1500", "--model.teachers", f"[{teacher}]"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and "teachers score 16000-sample windows, the student 24000" in lines[0]
    assert "Traceback" not in err and not (runs / "test" / "version_1").exists(), err[-2000:]
    with pytest.raises(EnsembleError, match="front-end settings"):
        load_ensemble([str(long_run), str(teacher)])
    assert teacher.read_bytes() == before


def test_streamer_fed_in_odd_chunks_at_another_rate_and_finished_gives_the_events_of_stream(tiny_checkpoint,
                                                                                           sc_v2_clips):
    """``Model.streamer`` as a user drives it: chunks of any size, another rate, stereo int16, then ``finish()``; the
    events of ``Model.stream`` on the same recording at 16 kHz. The last word ends the recording, so only
    ``finish()`` (its flush of silence) can decide it."""
    known = clips_the_model_knows(tiny_checkpoint, sc_v2_clips, 3)
    parts = [np.zeros(8000, np.float32)]
    for _, path in known:
        parts += [load_audio(path), np.zeros(24_000, np.float32)]
    last = parts[-2]
    _, end = speech_bounds(torch.from_numpy(last[None]))
    wave = np.concatenate([*parts[:-2], last[: int(end[0])]])  # stops where the last word's speech stops
    model = speech.load(tiny_checkpoint)
    reference = list(model.stream([wave], sample_rate=16_000))
    assert [d.label for d in reference] == [w for w, _ in known]

    def drive(engine, pcm: np.ndarray) -> tuple[list, list]:
        sizes, fed, start, k = (4410, 7, 1000, 12_345, 1), [], 0, 0
        while start < len(pcm):
            fed += engine.feed(pcm[start : start + sizes[k % len(sizes)]])
            start, k = start + sizes[k % len(sizes)], k + 1
        return fed, engine.finish()

    # the same rate in odd chunks: the same events (scores to float rounding: windows batch up otherwise)
    fed, finished = drive(model.streamer(sample_rate=16_000), wave)
    assert [(d.label, d.time) for d in fed + finished] == [(d.label, d.time) for d in reference] and len(finished) == 1
    np.testing.assert_allclose([d.score for d in fed + finished], [d.score for d in reference], atol=1e-6)
    # 44.1 kHz stereo int16 (the downmix halves nothing: both channels carry the word): the same words at the same
    # times, scores within 0.01 (resampling), the last one from finish() alone; a second finish() adds nothing
    high = resample(wave, 16_000, 44_100)
    stereo = np.round(np.stack([high, high], axis=1) * 32767).clip(-32768, 32767).astype(np.int16)
    engine = model.streamer(sample_rate=44_100)
    fed, finished = drive(engine, stereo)
    assert [d.label for d in fed] == [d.label for d in reference[:-1]] and [d.label for d in finished] == [reference[-1].label]
    assert [d.time for d in fed + finished] == [d.time for d in reference]
    np.testing.assert_allclose([d.score for d in fed + finished], [d.score for d in reference], atol=0.01)
    assert engine.finish() == []
