"""Audio in: reading and checking sound files (:mod:`~speech.audio.io`), streaming resampling
(:mod:`~speech.audio.resample`) and where the speech is in a clip (:mod:`~speech.audio.activity`).

The bottom of the data flow: every waveform past this layer is 16 kHz mono float32. NumPy and soundfile only.
"""
