"""The version of speech (what ``speech --version`` prints and model files record as ``speech_version``)."""

__version__ = "0.1.0"
