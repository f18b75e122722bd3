"""Knowledge distillation: one model trained to match the averaged probabilities of trained teachers.

An ensemble of seeds is more accurate and makes fewer confident mistakes than one of its members (the README's
ensemble figures), but costs a model per member at run time. Distillation (Hinton et al. 2015) trains a single
model on a mix of the labels and the teachers' softened probabilities, to keep most of that gain at the cost of
one model. The teachers see the student's augmented waveform (before SpecAugment, which only the student gets),
each through its own front end, and are averaged as :mod:`speech.model.ensemble` does.

A teacher must not have trained on speakers or readers the student holds out: its probabilities would carry
what it learnt of them into the student, and the student's held-out figures would no longer be held out.
:func:`check_teachers` refuses such a teacher.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from speech.data.record import DataRecord
from speech.errors import SettingError
from speech.model.recogniser import Recogniser


class Teachers:
    """Trained checkpoints whose averaged, temperature-softened probabilities are the student's soft targets.

    Held outside the student's modules, so they are neither trained nor saved in its checkpoints.
    """

    def __init__(self, paths: Sequence[str], labels: list[str], window_samples: int | None = None) -> None:
        from speech.model.ensemble import load_ensemble
        from speech.training.runs import RunFolderError, run_checkpoint

        try:  # a run folder stands for its best checkpoint (configs/packaged.yaml names its teachers' runs)
            self.paths = [str(run_checkpoint(p)) for p in paths]
        except RunFolderError as exc:
            raise SettingError(f"teachers: {exc}", param="teachers") from None
        self.model: Recogniser = load_ensemble(self.paths).eval().requires_grad_(False)
        if list(self.model.labels) != list(labels):
            raise SettingError(
                f"{', '.join(self.paths)}: the teachers' labels {self.model.labels} differ from the student's {labels}",
                param="teachers",
            )
        window = self.model.frontend.config.window_samples
        if window_samples is not None and window != window_samples:
            raise SettingError(
                f"{', '.join(self.paths)}: the teachers score {window}-sample windows, the student "
                f"{window_samples}-sample ones; distil from teachers of the student's window_ms",
                param="teachers",
            )

    def __deepcopy__(self, memo: dict) -> Teachers:
        return self  # frozen: a copy of the student (weight averaging makes one) shares them instead of copying

    @torch.no_grad()
    def probabilities(self, waves: torch.Tensor, temperature: float) -> torch.Tensor:
        """``(batch, samples)`` waveforms -> ``(batch, classes)`` soft targets: a softmax of the teachers' log
        probabilities (the log of their mean, for several) divided by ``temperature``."""
        model = self.model.to(waves.device)
        return torch.softmax(model(waves).float() / temperature, dim=-1)

    def record(self) -> DataRecord | None:
        return DataRecord.from_dict(self.model.sections.get("data"))


def check_teachers(teachers: Teachers, student: DataRecord | None) -> None:
    """Refuse teachers that trained on a speaker or reader the student does not train on."""
    taught = teachers.record()
    if taught is None or student is None:
        raise SettingError(
            f"{', '.join(teachers.paths)}: distillation needs the teachers' and the student's data records to check "
            "that no teacher trained on the student's held-out speakers",
            param="teachers",
        )
    speakers = set(taught.training_speakers) - set(student.training_speakers)
    readers = taught.training_readers() - student.training_readers()
    if speakers or readers:
        names = sorted(speakers | readers)
        raise SettingError(
            f"{', '.join(teachers.paths)}: the teachers trained on {len(names)} speakers or readers the student holds "
            f"out (e.g. {', '.join(names[:3])}); distil only from models trained on the student's training split",
            param="teachers",
        )


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(targets || softmax(student / T)) per example, times T² so its gradients keep their scale whatever T."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_student, targets, reduction="batchmean") * temperature**2

