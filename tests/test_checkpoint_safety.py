"""Loading a model file never runs code: a checkpoint whose pickle would run a command is refused, the command
never runs, and the project's own checkpoints still load. Corrupt ONNX files give a clear error."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from speech.classifiers.recurrent import RecurrentConfig
from speech.cli import main
from speech.model.checkpoint import load_recogniser, save_checkpoint
from speech.model.model_file import CheckpointError, OnnxModelError, model_metadata
from speech.model.recogniser import Recogniser
from speech.runtime.scorers import OnnxScorer, TorchScorer, load_scorer


class RunsCommand:
    """Unpickling this calls ``os.system(command)``: the classic malicious-pickle payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_files(folder, marker) -> dict[str, object]:
    """Checkpoints that would ``touch marker`` when unpickled by an unrestricted loader."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = RunsCommand(f"touch {marker}")
    model = Recogniser(["yes", "no"], classifier=RecurrentConfig(hidden_size=8, num_layers=1))
    state = {"recogniser." + k: v for k, v in model.state_dict().items()}
    files = {}
    # 1. a checkpoint that looks right (weights + description) with the payload hidden in an extra entry
    files["inside-real.ckpt"] = {"state_dict": state, "speech": model_metadata(model), "callbacks": payload}
    # 2. the payload as the whole file
    files["bare.ckpt"] = payload
    for name, obj in files.items():
        torch.save(obj, folder / name)
    # 3. a legacy (non-zip) pickle file
    with open(folder / "legacy.ckpt", "wb") as handle:
        pickle.dump({"speech": model_metadata(model), "x": payload}, handle, protocol=2)
    return {name: folder / name for name in [*files, "legacy.ckpt"]}


def test_the_payload_is_real(tmp_path):
    """Control: an unrestricted ``torch.load`` (not what we use) would indeed run the command."""
    marker = tmp_path / "control-marker"
    path = malicious_files(tmp_path / "control", marker)["bare.ckpt"]
    code = f"import torch, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists()


def test_malicious_checkpoints_are_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned-marker"
    data = tmp_path / "data" / "yes"
    data.mkdir(parents=True)
    for name, path in malicious_files(tmp_path / "ckpts", marker).items():
        with pytest.raises(CheckpointError, match=r"refused to load.*could run code.*GLOBAL posix.system") as info:
            load_recogniser(path)
        assert str(path) in str(info.value), name
        with pytest.raises(CheckpointError, match="refused to load"):
            load_scorer(path)
        assert main(["evaluate", str(path), "--data", str(tmp_path / "data")]) == 2
        assert "refused to load" in capsys.readouterr().err
        assert main(["export", str(path), "--onnx", str(tmp_path / f"{name}.onnx")]) == 2
        assert "refused to load" in capsys.readouterr().err
        assert not (tmp_path / f"{name}.onnx").exists()
        assert not marker.exists(), f"{name}: loading ran the payload"


def test_the_projects_own_checkpoints_load(tiny_checkpoint, tmp_path):
    recogniser = load_recogniser(tiny_checkpoint)
    assert recogniser.labels[:2] == ["_silence_", "_unknown_"] and bool(recogniser.frontend.fitted)
    scorer = load_scorer(tiny_checkpoint)
    assert isinstance(scorer, TorchScorer) and scorer.backend == "torch"
    fresh = save_checkpoint(Recogniser(["a", "b"]), tmp_path / "fresh.ckpt")
    assert load_recogniser(fresh).labels == ["a", "b"]


def test_unreadable_checkpoints_give_clear_errors(tmp_path, capsys):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.ckpt: not a PyTorch checkpoint"):
        load_recogniser(text)
    # text files the unpickler used to fail on with "KeyError: 101" and "IndexError: pop from empty list"
    data = tmp_path / "data" / "yes"
    data.mkdir(parents=True)
    for name, content in (("hello.ckpt", "hello world\nmore text\n"), ("epoch.ckpt", "epoch: 3\n"), ("empty.ckpt", "")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(CheckpointError, match=rf"{name}: (not a PyTorch checkpoint|empty file)"):
            load_recogniser(path)
        for command in (["evaluate", str(path), "--data", str(tmp_path / "data")],
                        ["export", str(path), "--onnx", str(tmp_path / f"{name}.onnx")]):  # fmt: skip
            assert main(command) == 2
            err = capsys.readouterr().err
            assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    random_pickle = tmp_path / "random.ckpt"
    random_pickle.write_bytes(b"\x80" + bytes(range(1, 200)))
    with pytest.raises(CheckpointError, match="random.ckpt: not a readable PyTorch checkpoint"):
        load_recogniser(random_pickle)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_recogniser(tmp_path)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="plain.ckpt: not a speech checkpoint"):
        load_recogniser(plain)


def test_corrupt_onnx_files_give_clear_errors(tiny_checkpoint, tmp_path, capsys):
    good = tmp_path / "good.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(good)]) == 0
    capsys.readouterr()
    blob = good.read_bytes()
    cases = {
        "garbage.onnx": os.urandom(4096),
        "truncated.onnx": blob[: len(blob) // 2],
        "empty.onnx": b"",
        "zip.onnx": None,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is None:  # a different file type wearing the suffix
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("model.onnx", blob)
        else:
            path.write_bytes(content)
        with pytest.raises(OnnxModelError, match=rf"{name}: not a valid ONNX model"):
            OnnxScorer(path)
        with pytest.raises(OnnxModelError, match=name):
            load_scorer(path)
        assert main(["evaluate", str(path), "--data", str(tmp_path)]) == 2
        assert name in capsys.readouterr().err
    with pytest.raises(OnnxModelError, match="no such ONNX file"):
        OnnxScorer(tmp_path / "missing.onnx")


def test_export_checks_the_output_place_first(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    for target, expected in ((tmp_path / "a-file" / "m.onnx", "a-file is a file"), (tmp_path / "a-dir", "is a folder")):
        assert main(["export", str(tiny_checkpoint), "--onnx", str(target)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
