"""The MFCC front end, waveform -> features: its settings and NumPy implementation (:mod:`~speech.frontend.mfcc`,
what exported models run on, no torch) and the PyTorch twin that training, checkpoints and export use
(:mod:`~speech.frontend.features`, with SpecAugment). One set of settings, two implementations tested equal, so a
model hears live the features it was trained on.
"""
