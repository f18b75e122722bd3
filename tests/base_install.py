"""Run ``speech`` as on the base install: the training extra's modules cannot be imported.

``python tests/base_install.py live MODEL.onnx --wav F`` runs the CLI; ``python tests/base_install.py -c CODE``
runs Python code. Every module of the training extra (and the libraries only it brings) is set to None in
``sys.modules``, so importing any of them raises ModuleNotFoundError, as on an install without them.
"""

from __future__ import annotations

import sys

BLOCKED = ("torch", "torchaudio", "lightning", "pytorch_lightning", "torchmetrics", "tensorboard", "onnx",
           "matplotlib", "scipy", "librosa")

for name in BLOCKED:
    sys.modules[name] = None  # type: ignore[assignment]

if __name__ == "__main__":
    if sys.argv[1:2] == ["-c"]:
        exec(compile(sys.argv[2], "<base-install>", "exec"), {"__name__": "__base__"})
    else:
        from speech.cli import main

        sys.exit(main(sys.argv[1:]))
