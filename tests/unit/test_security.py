"""Security rules that hold across the code base."""

from __future__ import annotations

import ast
from pathlib import Path

import pallet_dev

SOURCE = Path(pallet_dev.__file__).parent


def test_no_subprocess_call_uses_a_shell() -> None:
    offenders = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path}:{node.value.lineno}")
    assert offenders == []


def test_only_the_runner_starts_processes() -> None:
    starters = {"Popen", "run", "call", "check_call", "check_output", "system", "popen"}
    offenders = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "runner.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"subprocess", "os"}
                and node.attr in starters
            ):
                offenders.append(
                    f"{path.relative_to(SOURCE)}:{node.lineno} {node.value.id}.{node.attr}"
                )
    assert offenders == []
