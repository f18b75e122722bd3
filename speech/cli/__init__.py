"""``speech`` command line: a thin dispatcher.

Each sub-command lives in its own module under ``speech.cli`` with ``add_arguments(parser)`` and
``run(args) -> int``, imported only when it runs; ``train`` hands its arguments to LightningCLI.

Exit codes, for every command: 0 success, 2 usage or bad input (one-line message naming what and why), 1 a
failure while running, 130 Ctrl-C (a one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

# name -> (module, one-line help)
COMMANDS = {
    "quickstart": ("speech.cli.quickstart", "offline demo: synthesise data, train, evaluate, export, stream-test"),
    "train": ("speech.cli.train", "train a model (LightningCLI 'fit'; see 'speech train --help')"),
    "evaluate": ("speech.cli.evaluate", "evaluate checkpoints / ONNX models on a data set"),
    "export": ("speech.cli.export", "export a checkpoint to ONNX"),
    "live": ("speech.cli.live", "live recognition from a microphone, a WAV file or stdin"),
    "stream-test": ("speech.cli.stream_test", "streaming accuracy test on a generated long recording"),
    "calibrate": ("speech.cli.calibrate", "per-keyword detection thresholds for a target false-accept rate"),
    "data": ("speech.cli.data", "dataset tools: download, summary"),
    "synth": ("speech.cli.synth", "synthesise a keyword data set with espeak-ng"),
    "plot": ("speech.cli.plot", "plot the learning curve of training runs (validation accuracy, loss)"),
}
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


# warnings of the libraries underneath that say nothing a user can act on (see speech.export._export_graph)
KNOWN_WARNINGS = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed"),
    (UserWarning, r"Exporting a model to ONNX with a batch_size other than 1"),
)


def quiet_known_warnings() -> None:
    """Hide :data:`KNOWN_WARNINGS` for the rest of the process (the CLI owns the process; the library never
    touches warning filters)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def usage() -> str:
    lines = ["usage: speech COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "'speech COMMAND --help' describes a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``speech ARGV`` (default: the process's own arguments) and return its exit code.

    Called as the program itself (``argv`` None) a Ctrl-C ends the process at once with 130: CPython may
    otherwise re-send SIGINT to itself at exit when the interrupt surfaced inside a C extension.
    """
    code = _dispatch(list(sys.argv[1:] if argv is None else argv))
    if argv is None and code == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"speech: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
        if name == "train":
            return int(module.main(rest) or 0)
        # no abbreviations: '--split' must never quietly stand for '--split-rule' or '--split-seed'
        parser = argparse.ArgumentParser(prog=f"speech {name}", description=COMMANDS[name][1], allow_abbrev=False)
        parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
        )
        quiet_known_warnings()
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"\nspeech {name}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
