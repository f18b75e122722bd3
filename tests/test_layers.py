"""The package's folders are layers: a module imports only from its own layer and the ones below it.

The order is docs/architecture.md's. Every ``import speech...`` / ``from speech... import`` counts, those inside
functions too (a lazy import is still a dependency); ``from speech import X`` counts as an import of ``speech.X``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speech"

# bottom first; one entry per layer, each a tuple of the top-level names (folders or modules) in it
LAYERS = [
    ("errors", "version"),
    ("utils", "classifiers"),
    ("audio",),
    ("frontend",),
    ("data",),
    ("synth", "model"),
    ("streaming",),
    ("runtime",),
    ("models", "evaluation", "training"),
    ("api", "__init__"),
    ("quickstart",),
    ("cli", "__main__"),
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def top_name(module: str) -> str:
    """``speech.data.labels`` -> ``data``; ``speech`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported speech module) for every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "speech"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "speech":
            if node.module == "speech":
                found += [(node.lineno, f"speech.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_top_level_name_has_a_layer():
    names = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in package_modules()}
    assert names - set(LEVEL) == set(), "a new top-level module or folder: give it a layer here and in docs/architecture.md"
    assert set(LEVEL) - names == set(), "a layer names a module or folder that is gone"


def test_no_import_runs_up_the_layers():
    upward = []
    for path in package_modules():
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, module in imports_of(path):
            there = top_name(module)
            if there in LEVEL and LEVEL[there] > LEVEL[here]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {module} ({there})")
    assert upward == []


@pytest.mark.parametrize("source, expected", [
    ("from speech.data.labels import SILENCE\n", [(1, "speech.data.labels")]),
    ("def f():\n    from speech import api\n", [(2, "speech.api")]),
    ("import speech.runtime.scorers as s\nimport numpy\n", [(1, "speech.runtime.scorers")]),
    ("from . import x\nfrom speechless import y\n", []),
])
def test_imports_are_read_inside_functions_too(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imports_of(path) == expected


def test_an_upward_import_would_be_caught(tmp_path):
    """The check itself: a data module importing the training layer is named."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from speech.training.module import KeywordModule\n")
    (line, module), = imports_of(path)
    assert LEVEL[top_name(module)] > LEVEL["data"] and line == 2
