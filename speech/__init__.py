"""speech: keyword recognition with an MFCC front end and a bidirectional GRU (PyTorch Lightning)."""

__version__ = "0.1.0"
