"""``speech`` command line: a thin dispatcher.

Every sub-command is a jsonargparse parser: ``train`` is LightningCLI's (itself jsonargparse), and every other one
lives in its own module under ``speech.cli`` with ``add_arguments(parser)`` and ``run(args) -> int``, imported
only when it runs, its parser made by :func:`command_parser` (no abbreviations, the same help layout). Only this
layer prints, sets up logging and warning filters, and turns library errors into messages that name options.

Exit codes, for every command: 0 success, 2 usage or bad input (one-line message naming what and why), 1 a
failure while running, 130 Ctrl-C (a one-line message, no traceback). They are decided here, once: a
:class:`speech.errors.SpeechError` carries its own (``exit_code``) and the parameter it concerns (``param``), which
the command's ``FLAG_HINTS`` turn into the flag to change; any other exception is a bug, reported in one line as an
internal error (exit 1), its traceback printed only with ``-v`` or ``SPEECH_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings

import jsonargparse

from speech.errors import SpeechError

# name -> (module, one-line help)
COMMANDS = {
    "quickstart": ("speech.cli.quickstart", "offline demo: synthesise data, train, evaluate, export, stream-test"),
    "train": ("speech.cli.train", "train a model (LightningCLI 'fit'; see 'speech train --help')"),
    "evaluate": ("speech.cli.evaluate", "score models (.ckpt / .onnx) on the held-out clips of a data folder"),
    "export": ("speech.cli.export", "export a training checkpoint (.ckpt) to ONNX (.onnx)"),
    "live": ("speech.cli.live", "live keyword spotting from a microphone, a sound file or stdin (default model: the "
             "packaged 'commands')"),
    "stream-test": ("speech.cli.stream_test", "streaming accuracy of a model on long recordings built from held-out clips"),
    "calibrate": ("speech.cli.calibrate", "store per-keyword detection thresholds in a model for a target false-accept rate"),
    "data": ("speech.cli.data", "data folder tools: download, summary"),
    "synth": ("speech.cli.synth", "synthesise a keyword data folder with espeak-ng"),
    "plot": ("speech.cli.plot", "plot the learning curve of training runs (validation accuracy, loss)"),
    "pretrain": ("speech.cli.pretrain", "CTC-pretrain a recurrent encoder on transcribed running speech (and, with "
                 "--config, a training config's keyword clips)"),
    "hard-negatives": ("speech.cli.hard_negatives", "mine running-speech windows a model nearly fires on"),
}
# commands that run on the base install (no torch: numpy, onnxruntime, soundfile, sounddevice, rich); every other
# one needs the training extra and says so in one line (exit 2) when it is missing (speech.utils.extras)
BASE_INSTALL_COMMANDS = ("live", "data", "synth")
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


# warnings of the libraries underneath that say nothing a user can act on (see speech.runtime.export._export_graph)
KNOWN_WARNINGS = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed"),
    (UserWarning, r"Exporting a model to ONNX with a batch_size other than 1"),
    (Warning, r"Converting a tensor to a Python boolean might cause the trace to be incorrect"),
)


def quiet_known_warnings() -> None:
    """Hide :data:`KNOWN_WARNINGS` for the rest of the process (the CLI owns the process; the library never
    touches warning filters)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


class HelpFormatter(jsonargparse.DefaultHelpFormatter):
    """jsonargparse's layout, with each option's help as written (it states its own default where it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help or ""


class CommandParser(jsonargparse.ArgumentParser):
    """jsonargparse's parser, whose usage errors are one line (``speech CMD: error: ... (see 'speech CMD
    --help')``, exit 2) instead of the whole usage block before the error."""

    def error(self, message: str, ex: Exception | None = None):
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        sys.stderr.write(f"{prog}: error: {text} (see '{prog} --help')\n")
        raise SystemExit(2)


def command_parser(prog: str, description: str | None = None, **kwargs) -> jsonargparse.ArgumentParser:
    """The parser of one command (or one action of a command, e.g. ``speech data download``).

    No abbreviations: ``--split`` must never quietly stand for ``--split-rule`` or ``--split-seed``. A usage error
    is one line (:class:`CommandParser`).
    """
    return CommandParser(
        prog=prog, description=description, allow_abbrev=False, formatter_class=HelpFormatter, **kwargs
    )


def plain_namespace(parsed: jsonargparse.Namespace, subcommand_dest: str = "action") -> argparse.Namespace:
    """Parsed arguments as a flat ``argparse.Namespace``: the chosen action's own options (``add_subcommands``
    with ``dest=subcommand_dest``) join the command's."""
    values = parsed.as_dict()
    nested = {key for key, value in values.items() if isinstance(value, dict)}
    flat = {key: value for key, value in values.items() if key not in nested}
    if values.get(subcommand_dest) in nested:
        flat.update(values[values[subcommand_dest]])
    return argparse.Namespace(**flat)


def with_flag_hint(exc: Exception, hints: dict[str, str]) -> str:
    """A library error's message plus the command's hint for the parameter it names (``exc.param``): the library
    names parameters, each command knows its flags."""
    hint = hints.get(getattr(exc, "param", None) or "")
    message = one_line(str(exc))
    return f"{message} ({hint})" if hint else message


def usage() -> str:
    lines = ["usage: speech COMMAND [options]", "", "commands:"]
    width = max(map(len, COMMANDS)) + 1
    lines += [f"  {name:<{width}} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "'speech COMMAND --help' describes a command; 'speech --version' prints the version."]
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
    if argv[0] in ("-V", "--version"):
        from speech.version import __version__

        print(f"speech {__version__}")
        return 0
    argv = options_after_command(argv)
    if argv is None:
        return 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"speech: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from speech.utils.extras import require_training_extra

    hints: dict[str, str] = {}
    try:
        if name not in BASE_INSTALL_COMMANDS:
            require_training_extra("this command")
        module = importlib.import_module(COMMANDS[name][0])
        hints = getattr(module, "FLAG_HINTS", {})
        if name == "train":
            return int(module.main(rest) or 0)
        parser = command_parser(f"speech {name}", COMMANDS[name][1])
        parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        module.add_arguments(parser)
        args = plain_namespace(parser.parse_args(rest))
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
        )
        quiet_known_warnings()
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"\nspeech {name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error ends as one line and an exit code
        shown = f"{name} {rest[0]}" if name == "data" and rest and not rest[0].startswith("-") else name
        return failure(shown, exc, hints, verbose="-v" in rest or "--verbose" in rest)


LEADING_OPTIONS = {"--threads": 1, "-v": 0, "--verbose": 0}  # options the commands share -> values they take


def options_after_command(argv: list[str]) -> list[str] | None:
    """``speech --threads 2 -v live M`` as ``speech live --threads 2 -v M``: the options several commands share,
    given before the command, moved behind it (its parser then checks them as its own). Any other option before
    the command is refused in one line (None: exit 2)."""
    leading, i = [], 0
    while i < len(argv) and argv[i].startswith("-"):
        option = argv[i].split("=", 1)[0]
        if option not in LEADING_OPTIONS:
            print(f"speech: error: unknown option {argv[i]!r} before the command; options go after it "
                  "('speech COMMAND --help' lists them)", file=sys.stderr)
            return None
        takes = LEADING_OPTIONS[option] if "=" not in argv[i] else 0
        leading += argv[i : i + 1 + takes]
        i += 1 + takes
    if not leading:
        return argv
    if i >= len(argv):
        print(f"speech: error: {' '.join(leading)}: no command after the options (e.g. 'speech live "
              f"{' '.join(leading)} MODEL')", file=sys.stderr)
        return None
    return [argv[i], *leading, *argv[i + 1 :]]


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while handling a KeyboardInterrupt (e.g. an ImportError "initialization failed"
    when Ctrl-C lands inside a lazily imported extension module)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def failure(name: str, exc: Exception, hints: dict[str, str] | None = None, verbose: bool = False) -> int:
    """Report ``exc``, which ended ``speech NAME``, in one line on stderr and return the exit code: a
    :class:`~speech.errors.SpeechError`'s own (2 bad input, 1 a failure while running) with the command's hint
    for its parameter; 0 for a broken pipe (the reader has gone); 1 for another ``OSError``; 1 and "internal
    error" for anything else (a bug: its traceback is printed with ``verbose`` (``-v``) or ``SPEECH_DEBUG=1``).
    The one place exceptions become exit codes (``speech train``'s entry point uses it too). An error raised while
    a Ctrl-C was being handled is the interrupt (130)."""
    if _caused_by_interrupt(exc):  # Ctrl-C inside a C extension's import or call surfaces as another error
        print(f"\nspeech {name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    if isinstance(exc, SpeechError):
        print(f"speech {name}: error: {with_flag_hint(exc, hints or {})}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):  # e.g. `speech live --json ... | head -1`: the reader has what it wanted
        _quiet_stdout()
        return 0
    if verbose or os.environ.get("SPEECH_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, OSError):  # not the input's fault (those are SpeechErrors): a failure while running
        print(f"speech {name}: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    print(
        f"speech {name}: internal error: {type(exc).__name__}: {one_line(str(exc))} (a bug; run with "
        f"{'SPEECH_DEBUG=1' if name == 'train' else '-v or SPEECH_DEBUG=1'} for the traceback)",
        file=sys.stderr,
    )
    return 1


def one_line(message: str) -> str:
    """The first non-empty line of ``message`` (library messages are one line; a wrapped error's may not be)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
