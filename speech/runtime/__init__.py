"""Running model files: the scorers that turn waveforms into scores for ``.onnx`` (ONNX Runtime, no torch) and
``.ckpt`` (PyTorch) files behind one interface (:mod:`~speech.runtime.scorers`), and the export that writes the
``.onnx`` file the runtime runs and checks it against PyTorch (:mod:`~speech.runtime.export`).

The streaming engine (:mod:`speech.streaming`) takes any scorer; the packaged models are in
:mod:`speech.models`.
"""
