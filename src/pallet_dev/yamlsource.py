"""A YAML mapping read from a file, so that every error can name file:line.

Used for pallet-dev.yaml (config.py) and Helm values files (chart/values.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pallet_dev.errors import ConfigError


@dataclass(frozen=True)
class YamlMapping:
    path: Path
    data: dict[str, Any]
    root: yaml.Node | None

    def locate(self, loc: tuple[str, ...]) -> str:
        """``file:line`` of the key at ``loc`` (or of its nearest existing parent)."""
        line = line_of(self.root, loc)
        return f"{self.path}:{line}" if line else str(self.path)


def read_yaml_mapping(path: Path, *, what: str, keys: str, flag: str) -> YamlMapping:
    """Read ``path`` as a mapping; ConfigError (exit 2) with file[:line] otherwise.

    ``what`` names the file in messages ("config file"), ``keys`` gives example keys,
    ``flag`` the option that chose the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found.", hint=f"Check the {flag} path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the {what} ({exc}).", hint="Check its permissions."
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        loaded = yaml.safe_load(text) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{path}{line}: invalid YAML: {problem}.", hint="Fix the syntax at that line."
        ) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}:1: the {what} must be a mapping of keys ({keys}), "
            f"not a {type(loaded).__name__}."
        )
    return YamlMapping(path, loaded, root)


def line_of(node: yaml.Node | None, loc: tuple[str, ...]) -> int | None:
    """1-based line of the YAML key at ``loc``, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if pair is None:
                return line
            node = pair[1]
            line = pair[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line
