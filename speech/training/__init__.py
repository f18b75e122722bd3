"""Training: ``speech train`` as a library call (:mod:`~speech.training.train`, LightningCLI ``fit``), the
LightningModule (:mod:`~speech.training.module`: loss, metrics, optimiser), its parts (mixup, the learning-rate
schedule, distillation from teachers, CTC pretraining of the encoder) and the run folders it writes
(:mod:`~speech.training.runs`). The data side (splits, sampling, augmentation) is :mod:`speech.data`.
"""
