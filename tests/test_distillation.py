"""Distillation from trained teachers: the loss, the soft targets, a real distilled fit, and the leak check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LABELS_12, SC_V2_TEST, train_args

from speech.audio.io import fit_window, load_audio
from speech.cli.train import main as train_main
from speech.model.checkpoint import load_recogniser
from speech.model.model_file import read_checkpoint
from speech.training.distillation import Teachers, distillation_loss
from speech.training.module import KeywordModule


def test_the_loss_is_zero_where_the_student_matches_the_targets_and_pulls_towards_them():
    targets = torch.softmax(torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 0.0]]), dim=-1)
    temperature = 2.0
    matching = torch.log(targets) * temperature  # softmax(matching / T) == targets
    assert float(distillation_loss(matching, targets, temperature)) == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(2, 3, requires_grad=True)
    loss = distillation_loss(student, targets, temperature)
    loss.backward()
    assert float(loss.detach()) > 0
    # a gradient step raises the logits of the classes the targets favour over uniform, lowers the others
    assert torch.equal(torch.sign(-student.grad), torch.sign(targets - 1 / 3))


def test_soft_targets_are_the_teachers_tempered_probabilities(trained_run):
    checkpoint = next((trained_run / "checkpoints").glob("best*.ckpt"))
    model = load_recogniser(checkpoint)
    teachers = Teachers([str(checkpoint)], list(model.labels))
    waves = torch.from_numpy(np.stack([load_audio(p) for p in sorted((SC_V2_TEST / "yes").glob("*.wav"))[:4]]))
    soft = teachers.probabilities(waves, 2.0)
    with torch.no_grad():
        expected = torch.softmax(model(waves) / 2.0, dim=-1)
    assert torch.allclose(soft, expected, atol=1e-6) and torch.allclose(soft.sum(1), torch.ones(4))
    sharp = teachers.probabilities(waves, 1.0)
    assert (sharp.max(1).values >= soft.max(1).values - 1e-6).all()  # a higher temperature softens
    with pytest.raises(ValueError, match="differ from the student's"):
        Teachers([str(checkpoint)], list(reversed(model.labels)))


def labelled_clips(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real clips of each of the 12 labels, fitted to the model's window, and their labels."""
    chosen = [(i, path) for i, label in enumerate(LABELS_12) for path in sorted((SC_V2_TEST / label).glob("*.wav"))[:2]]
    waves = np.stack([fit_window(load_audio(path), window) for _, path in chosen])
    return torch.from_numpy(waves), torch.tensor([i for i, _ in chosen])


def loss_by_hand(student: Path, teacher: str, hparams: dict) -> float:
    """(1 - w) x label-smoothed cross-entropy + w x T² KL(teacher || student at T), batch means, written out."""
    w, t, eps = hparams["distill_weight"], hparams["distill_temperature"], hparams["label_smoothing"]
    student_model, teacher_model = load_recogniser(student).eval(), load_recogniser(teacher).eval()
    waves, labels = labelled_clips(student_model.frontend.config.window_samples)
    with torch.no_grad():
        z, zt = student_model(waves).double(), teacher_model(waves).double()
    soft = torch.exp(zt / t) / torch.exp(zt / t).sum(1, keepdim=True)  # the teacher's tempered probabilities
    log_q = z / t - torch.log(torch.exp(z / t).sum(1, keepdim=True))
    kl = (soft * (torch.log(soft) - log_q)).sum(1).mean() * t**2
    log_p = z - torch.log(torch.exp(z).sum(1, keepdim=True))
    k = z.shape[1]
    ce = (-(1 - eps) * log_p[torch.arange(len(labels)), labels] - eps / k * log_p.sum(1)).mean()
    return float((1 - w) * ce + w * kl)


def training_loss(student: Path, teacher: str, hparams: dict) -> float:
    """The loss :class:`KeywordModule`'s training step computes for the student with the teacher (evaluation mode:
    no SpecAugment, so the step is deterministic)."""
    recogniser = load_recogniser(student)
    module = KeywordModule(list(recogniser.labels), frontend=recogniser.frontend.config,
                           classifier=recogniser.classifier.config, label_smoothing=hparams["label_smoothing"],
                           teachers=[teacher], distill_weight=hparams["distill_weight"],
                           distill_temperature=hparams["distill_temperature"])
    module.recogniser.load_state_dict(recogniser.state_dict())
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        return float(module.training_step(labelled_clips(recogniser.frontend.config.window_samples), 0))


def test_a_distilled_fit_records_its_teacher_and_a_leaking_teacher_is_refused(trained_run, small_tree, cache_dir,
                                                                             tmp_path, capsys):
    teacher = str(next((trained_run / "checkpoints").glob("best*.ckpt")))
    runs = tmp_path / "runs"
    # a teacher's run folder (runs/NAME, as configs/packaged.yaml names them) stands for its best checkpoint
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1",
                       "--model.teachers", f"[{trained_run.parent}]", "--model.distill_weight", "0.7"])
    assert code == 0, capsys.readouterr().err[-2000:]
    student = next((runs / "test" / "version_0" / "checkpoints").glob("best*.ckpt"))
    hparams = read_checkpoint(student)["hyper_parameters"]
    assert hparams["teachers"] == [teacher] and hparams["distill_weight"] == 0.7
    # the loss this student trains on, recomputed by hand from the teacher's soft targets on real clips
    expected, got = loss_by_hand(student, teacher, hparams), training_loss(student, teacher, hparams)
    assert abs(got - expected) < 1e-5, (got, expected)
    # the teachers are neither trained nor saved: the student's file holds its own weights only
    assert not [k for k in read_checkpoint(student)["state_dict"] if not k.startswith(("recogniser.", "ema."))]
    # another split seed trains on other speakers: the teacher knows some the student holds out
    before = sorted((runs / "test").iterdir())
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1",
                       "--model.teachers", f"[{teacher}]", "--data.split_seed", "7"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and "the student holds out" in lines[0], err[-2000:]
    assert "Traceback" not in err and sorted((runs / "test").iterdir()) == before  # refused before any run folder
    # a teacher that was never trained stops the run before it starts: never an undistilled model in its place
    missing = tmp_path / "runs" / "teacher-0"
    code = train_main([*train_args(small_tree, runs, cache_dir), "--trainer.max_epochs", "1",
                       "--model.teachers", f"[{missing}]"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("speech train: error:")]
    assert code == 2 and len(lines) == 1 and f"{missing}: no such checkpoint or training run folder" in lines[0], err
    assert sorted((runs / "test").iterdir()) == before  # refused before any run folder


def test_a_run_folder_stands_for_its_one_best_checkpoint_and_an_ambiguous_one_is_refused(tmp_path):
    from speech.training.runs import RunFolderError, run_checkpoint

    def version(name: str, *files: str) -> Path:
        (tmp_path / "run" / name / "checkpoints").mkdir(parents=True)
        for file in files:
            (tmp_path / "run" / name / "checkpoints" / file).write_bytes(b"")
        return tmp_path / "run" / name / "checkpoints"

    first = version("version_0", "best-epoch07-acc0.9100.ckpt", "last.ckpt")
    version("version_1", "last.ckpt")  # a run stopped before its first validation: no best checkpoint
    assert run_checkpoint(tmp_path / "run") == first / "best-epoch07-acc0.9100.ckpt"
    assert run_checkpoint(tmp_path / "run" / "version_0") == first / "best-epoch07-acc0.9100.ckpt"
    assert run_checkpoint(first / "last.ckpt") == first / "last.ckpt"  # a file is itself
    version("version_10", "best-epoch03-acc0.8000.ckpt")
    with pytest.raises(RunFolderError, match=r"2 runs hold a best checkpoint \(version_0, version_10\)"):
        run_checkpoint(tmp_path / "run")
    with pytest.raises(RunFolderError, match="no best-"):
        run_checkpoint(tmp_path / "run" / "version_1")
    with pytest.raises(RunFolderError, match="no such checkpoint"):
        run_checkpoint(tmp_path / "nothing")
