"""Helm's merge of values files and its ``--set`` parsing, reproduced exactly.

pallet-dev merges values itself so it can validate them (and name the file:line or
``--set`` that set a bad value) before Helm or anything else runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pallet_dev.errors import ConfigError


def merge_values(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """Merge values like Helm: ``base`` is the chart's defaults, ``overlays`` the user's
    values files and ``--set`` results in precedence order (later wins).

    Overlays are deep-merged with each other (maps merge, everything else replaces, a
    null is kept); the result is then coalesced onto ``base``, where a null removes the
    default key. Inputs are not modified.
    """
    user: dict[str, Any] = {}
    for overlay in overlays:
        user = _merge_maps(user, overlay)
    return _coalesce(copy.deepcopy(user), base, top=True)


def _merge_maps(into: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(into)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge_maps(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _coalesce(user: dict[str, Any], defaults: Mapping[str, Any], *, top: bool) -> dict[str, Any]:
    for key, default in defaults.items():
        if key not in user:
            user[key] = copy.deepcopy(default)
        elif user[key] is None:
            # A null nullifies the chart default (Helm keeps it when the default is null too).
            if top or default is not None:
                del user[key]
        elif isinstance(user[key], dict) and isinstance(default, Mapping):
            _coalesce(user[key], default, top=False)
    return user


def _typed(text: str) -> Any:
    """Type a --set value like Helm's strvals: bools, null and decimal ints; else a string."""
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and _is_int64(text):
        return int(text)
    return text


def _is_int64(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isdecimal() and body.isascii() and -(2**63) <= int(text) < 2**63


def _split(text: str, separator: str, *, braces: bool = False) -> list[str]:
    """Split on unescaped ``separator`` (outside ``{...}`` when ``braces``), keep escapes."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(char + text[index + 1])
            index += 2
            continue
        if braces and char == "{":
            depth += 1
        elif braces and char == "}":
            depth = max(depth - 1, 0)
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def parse_set(expr: str) -> dict[str, Any]:
    """Parse one ``--set`` argument like Helm: ``a.b=1,c=true,d=null,e={x,y}``.

    Dotted keys nest, ``\\.``, ``\\,`` and ``\\=`` escape, values are typed as Helm types
    them (true/false, null, decimal integers without a leading zero; the rest stays a
    string), ``{x,y}`` is a list. List indexes (``a[0]=x``) are not supported.
    """
    result: dict[str, Any] = {}
    if not expr.strip():
        raise ConfigError("--set: empty expression (expected key=value).")
    for pair in _split(expr, ",", braces=True):
        key_and_value = _split(pair, "=")
        if len(key_and_value) < 2:
            raise ConfigError(
                f"--set {expr}: {pair!r} has no value "
                "(expected key=value, e.g. service.nodePort=30050)."
            )
        raw_key, raw_value = key_and_value[0], "=".join(key_and_value[1:])
        keys = [_unescape(part) for part in _split(raw_key, ".")]
        if any(not key for key in keys):
            raise ConfigError(f"--set {expr}: {raw_key!r} has an empty key segment.")
        if any("[" in key and key.endswith("]") for key in keys):
            raise ConfigError(
                f"--set {expr}: list indexes ({raw_key}) are not supported; use a values file."
            )
        value: Any
        if raw_value.startswith("{") and raw_value.endswith("}"):
            inner = raw_value[1:-1]
            value = [_typed(_unescape(item)) for item in _split(inner, ",")] if inner else []
        else:
            value = _typed(_unescape(raw_value))
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[keys[-1]] = value
    return result
