"""A YAML mapping read from a file, so that every error can name file:line.

Used for pallet-dev.yaml (config.py) and Helm values files (chart/loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pallet_dev.errors import ConfigError

# the largest config or values file read (1 MiB); documented in docs/troubleshooting.md
MAX_BYTES = 1 << 20


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
    text = read_limited(path, what=what, flag=flag)
    try:
        root = _compose_plain(path, text)
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


def read_limited(path: Path, *, what: str, flag: str) -> str:
    """The text of a regular file of at most :data:`MAX_BYTES` (never a FIFO or a device)."""
    import os
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found.", hint=f"Check the {flag} path.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"{path}: cannot read the {what}: it is not a regular file.",
            hint=f"Give {flag} a YAML file (not a folder, pipe or device).",
        )
    if info.st_size > MAX_BYTES:
        raise ConfigError(
            f"{path}: the {what} is {info.st_size} bytes; at most {MAX_BYTES} are read.",
            hint="A pallet-dev config or values file is a few kB: check that this is the "
            "right file.",
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the {what} ({exc.strerror}).", hint="Check its permissions."
        ) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: the {what} is larger than {MAX_BYTES} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: the {what} is not UTF-8 text.", hint="Save it as UTF-8."
        ) from None


def _compose_plain(path: Path, text: str) -> yaml.Node | None:
    """Compose the document, refusing what pallet-dev's files never need.

    Aliases (``*name``) are refused: expanding them is how a few hundred bytes become
    gigabytes. A duplicate key is refused too (YAML keeps the last one silently), naming
    both lines. More than one document is refused.
    """
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            raise ConfigError(
                f"{path}:{line}: YAML aliases (*{event.anchor}) are not supported.",
                hint="Write the value out where it is used.",
            )
    documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    if len(documents) > 1:
        second = documents[1]
        line = second.start_mark.line + 1 if second is not None else 1
        raise ConfigError(
            f"{path}:{line}: the file holds more than one YAML document (---).",
            hint="Keep one document: remove the second `---` and what follows.",
        )
    root = documents[0] if documents else None
    _check_duplicates(path, root)
    return root


def _check_duplicates(path: Path, node: yaml.Node | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            line = key.start_mark.line + 1
            if name in seen:
                raise ConfigError(
                    f"{path}:{line}: duplicate key {name!r:.60} (also at line {seen[name]}).",
                    hint="Keep one of them.",
                )
            seen[name] = line
            _check_duplicates(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(path, item)


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
