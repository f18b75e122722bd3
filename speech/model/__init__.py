"""A trained model: the :class:`~speech.model.recogniser.Recogniser` (front end + classifier + labels), the
model-file schema every ``.ckpt`` and ``.onnx`` carries (:mod:`~speech.model.model_file`, torch-free),
checkpoints read back as recognisers (:mod:`~speech.model.checkpoint`) and ensembles of them
(:mod:`~speech.model.ensemble`). The networks themselves are in :mod:`speech.classifiers`.
"""
