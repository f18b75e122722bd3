"""The default run (``pytest -q``, what CI runs) leaves out the tests marked ``slow`` (pyproject.toml), so a slow
test must never be the only test of its feature: each names, on its marker's line (``# by default: NAME``), the test
or fixture of the default run that covers the same feature."""

from __future__ import annotations

import ast
import re

from conftest import REPO

TESTS = REPO / "tests"


def slow_marker(node: ast.FunctionDef) -> ast.expr | None:
    """The ``@pytest.mark.slow`` decorator of ``node``, if it has one."""
    return next((d for d in node.decorator_list if ast.unparse(d) == "pytest.mark.slow"), None)


def test_every_slow_test_names_a_default_test_of_its_feature():
    default, named = set(), {}
    for path in sorted(TESTS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef):
                continue
            marker = slow_marker(node)
            if marker is None:
                default.add(node.name)
                continue
            found = re.search(r"# by default: .*?(\w+)\)?\s*$", lines[marker.lineno - 1])
            named[f"{path.name}::{node.name}"] = found.group(1) if found else None
    assert named, "no slow test found: the marker's rule has nothing to check"
    unnamed = [test for test, counterpart in named.items() if counterpart is None]
    assert not unnamed, f"slow tests without '# by default: NAME' on their marker line: {unnamed}"
    missing = {test: counterpart for test, counterpart in named.items() if counterpart not in default}
    assert not missing, f"slow tests whose named default test or fixture is not in the default run: {missing}"
    assert "addopts = \"-ra -m 'not slow'\"" in (REPO / "pyproject.toml").read_text(encoding="utf-8")
