"""Issue #36 row 7, the smaller promises about input: the API refuses what it cannot use with a one-line
``speech.SpeechError`` (not a plain ValueError/TypeError, not scores of nothing); the command line's usage errors
are one line; options given before the command are taken; a teacher given as an ONNX file is told so plainly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

import speech
from speech.audio.io import AudioError, load_audio
from speech.cli import main
from speech.errors import SettingError


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return speech.load(tiny_checkpoint)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_predict_refuses_clips_it_cannot_score(model, sc_v2_clips):
    clip = load_audio(sc_v2_clips["yes"][0])
    cases = {  # input -> (error class, what the message says)
        "empty": (np.zeros(0, np.float32), AudioError, "holds no samples"),
        "empty int16": (np.zeros(0, np.int16), AudioError, "holds no samples"),
        "2-D": (np.stack([clip, clip]), AudioError, r"\(samples,\) mono audio, got shape \(2, 16000\)"),
        "complex": (clip.astype(np.complex64), AudioError, "int16, int32 or float, got complex64"),
        "text": (np.array(["a", "b"]), AudioError, "int16, int32 or float, got <U1"),
        "int64": (np.zeros(16000, np.int64), AudioError, "int16, int32 or float, got int64"),
    }
    for name, (value, error, says) in cases.items():
        with pytest.raises(error, match=says) as exc:
            model.predict(value)
        assert isinstance(exc.value, speech.SpeechError), name
        one_line(exc)
    with pytest.raises(AudioError, match="holds no samples"):
        model.predict_batch([clip, np.zeros(0, np.float32)])
    assert set(model.predict(clip)) == set(model.labels)  # a good clip still scores


def test_stream_and_streamer_refuse_bad_settings(model, sc_v2_clips):
    chunk = load_audio(sc_v2_clips["yes"][0])
    for threshold in (2, -0.1, float("nan"), "0.5", True):
        with pytest.raises(SettingError, match="threshold must be a probability in") as exc:
            list(model.stream([chunk], threshold=threshold))
        one_line(exc)
    for rate in (0, -16000, 2.5, 16000.0, "16000"):
        with pytest.raises(SettingError, match="sample_rate must be a positive whole number of Hz") as exc:
            model.streamer(sample_rate=rate)
        one_line(exc)
        with pytest.raises(SettingError, match="sample_rate must be a positive whole number of Hz"):
            list(model.stream([chunk], sample_rate=rate))
    engine = model.streamer(sample_rate=np.int64(8000))  # a NumPy integer is a whole number
    assert engine.input_rate == 8000
    with pytest.raises(AudioError, match="got complex64"):
        engine.feed(chunk.astype(np.complex64))
    with pytest.raises(AudioError, match=r"\(samples,\) or \(samples, channels\)"):
        engine.feed(np.zeros((2, 2, 2), np.float32))


def test_usage_errors_are_one_line_and_options_may_come_before_the_command(tiny_checkpoint, tmp_path, capsys):
    def refused(argv: list[str], prog: str, says: str) -> None:
        try:
            code = main(argv)  # speech train returns its code
        except SystemExit as exit_info:  # the others' parsers exit
            code = exit_info.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "usage:" not in err, err
        assert err.startswith(f"{prog}: error: ") and says in err and f"(see '{prog} --help')" in err, err

    refused(["data", "download-librispeech", "--part", "nonsense", "--root", str(tmp_path)],
            "speech data download-librispeech", "argument --part: invalid choice: 'nonsense'")
    refused(["live", str(tiny_checkpoint), "--bogus"], "speech live", "unrecognized arguments: --bogus")
    refused(["data"], "speech data", 'expected "action" to be one of')
    # speech train's options are jsonargparse's: one line too, naming the option and what it expected
    refused(["train", "--config", str(REPO / "configs" / "cpu-small.yaml"), "--data.batch_size", "abc"], "speech train",
            'Parser key "data.batch_size": Expected a <class \'int\'>. Got value: abc')
    refused(["train", "--data.running_speech_sentences", "some"], "speech train",
            "Expected a typing.Literal['keyword_free', 'all']. Got value: some")
    refused(["train", "--bogus", "1"], "speech train", "unrecognized arguments: --bogus 1")
    # shared options before the command: moved behind it, checked by the command itself
    refused(["--threads", "0", "live", str(tiny_checkpoint)], "speech live",
            "argument --threads: expected a number of threads >= 1 or 'auto', got 0")
    wav = tmp_path / "yes.wav"
    from speech.audio.io import write_wav

    write_wav(wav, np.zeros(16000, np.float32))
    assert main(["--threads", "1", "-v", "live", str(tiny_checkpoint), "--wav", str(wav), "--json"]) == 0
    assert main(["--threads=1", "live", str(tiny_checkpoint), "--wav", str(wav), "--json"]) == 0
    capsys.readouterr()
    assert main(["--colour", "live"]) == 2
    assert capsys.readouterr().err == ("speech: error: unknown option '--colour' before the command; options go after "
                                       "it ('speech COMMAND --help' lists them)\n")
    assert main(["--threads", "2"]) == 2
    assert "no command after the options" in capsys.readouterr().err


def test_a_teacher_or_checkpoint_given_as_onnx_is_told_so(tiny_checkpoint, tmp_path, capsys):
    from speech.model.model_file import CheckpointError
    from speech.runtime.export import export_onnx
    from speech.training.distillation import Teachers

    onnx = export_onnx(tiny_checkpoint, tmp_path / "teacher.onnx")
    renamed = tmp_path / "teacher.ckpt"  # an ONNX file under a checkpoint's name: found by its first byte
    renamed.write_bytes(onnx.read_bytes())
    for path in (onnx, renamed):
        with pytest.raises(CheckpointError) as exc:
            Teachers([str(path)], speech.load(tiny_checkpoint).labels)
        assert one_line(exc) == (f"{path}: an ONNX model, not a PyTorch checkpoint; this needs the .ckpt checkpoint "
                                 "written by 'speech train' (the one the .onnx was exported from)")
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a model")
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint \(it starts with b'not '; expected a .ckpt "
                                              r"file written by 'speech train'\)$"):
        Teachers([str(notes)], [])
