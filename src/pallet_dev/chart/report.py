"""The wording of values errors: one sentence per problem, naming where it was set,
the field path, what is wrong, the value and what is allowed (read off the schema)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from pallet_dev.chart.constants import PATTERN_PHRASES
from pallet_dev.chart.model_base import RuleViolation
from pallet_dev.chart.schema import values_schema

_PROBLEMS = {
    "extra_forbidden": "unknown key",
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string, quoted in YAML (--set-string on the command line)",
    "string_pattern_mismatch": "has the wrong format",
    "literal_error": "is not one of the allowed values",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "none_required": "must be null",
}


def format_validation_error(
    exc: ValidationError,
    where: Callable[[Sequence[tuple[str, ...]]], str],
    limit: int = 3,
) -> str:
    """One sentence per problem (at most ``limit``): where, field path, problem, value, rule.

    ``where`` names the source of a problem given the field paths involved (the field
    first, then the fields that made a cross-field rule apply).
    """
    sentences: list[str] = []
    errors = _dedupe_union_errors(exc.errors())
    for error in errors[:limit]:
        loc = tuple(str(part) for part in error["loc"])
        value = error.get("input")
        cause = (error.get("ctx") or {}).get("error")
        involved: list[tuple[str, ...]] = []
        if isinstance(cause, RuleViolation):
            involved = [(*loc, *path) for path in cause.because]
            loc = (*loc, *cause.field)
            problem, value, allowed = cause.problem, cause.value, cause.allowed
        elif error["type"] == "extra_forbidden":
            problem = "unknown key"
            allowed = _allowed_keys(loc[:-1])
        else:
            problem = _PROBLEMS.get(error["type"]) or _problem_text(error)
            allowed = allowed_at(loc)
        path = ".".join(loc) or "(top level)"
        source = where([loc, *involved])
        sentences.append(f"{source}: {path}: {problem} (got {_show(value)}; allowed: {allowed}).")
    if len(errors) > limit:
        sentences.append(f"({len(errors) - limit} more problem(s) not shown.)")
    return " ".join(sentences)


def _dedupe_union_errors(errors: list[Any]) -> list[Any]:
    """`str | None` fields report one error per union member; keep the first per field."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for error in errors:
        loc = tuple(str(part) for part in error["loc"] if part not in ("str", "none", "int"))
        if error["type"] != "extra_forbidden" and loc in seen:
            continue
        seen.add(loc)
        error = {**error, "loc": loc}
        kept.append(error)
    return kept


def _problem_text(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    message = message.replace("Value error, ", "").replace("Input should be", "must be")
    return message


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _schema_at(loc: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = values_schema()
    for key in loc:
        if node is None:
            return None
        node = _non_null(node)
        if key in node.get("properties", {}):
            node = node["properties"][key]
        elif key.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def _non_null(node: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
    return options[0] if len(options) == 1 else node


def _allowed_keys(loc: tuple[str, ...]) -> str:
    node = _schema_at(loc)
    keys = sorted(_non_null(node).get("properties", {})) if node else []
    return "the keys " + ", ".join(keys) if keys else "no other keys"


def allowed_at(loc: tuple[str, ...]) -> str:
    node = _schema_at(loc)
    return describe_schema(node) if node is not None else "see values.yaml"


def describe_schema(node: Mapping[str, Any]) -> str:
    """What a JSON schema node accepts, in a few words (for "allowed: ..." in errors)."""
    if "anyOf" in node:
        return " or ".join(describe_schema(option) for option in node["anyOf"])
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(item) for item in node["enum"])
    kind = node.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and high is not None:
            return f"an integer from {low} to {high}"
        if low is not None:
            return f"an integer of at least {low}"
        return "an integer"
    if kind == "string":
        pattern = node.get("pattern")
        if pattern:
            return PATTERN_PHRASES.get(pattern, f"a string matching {pattern}")
        if "maxLength" in node:
            return f"a string of {node.get('minLength', 0)} to {node['maxLength']} characters"
        return "a string"
    if kind == "array":
        items = node.get("items")
        return f"a list of {describe_schema(items)}" if isinstance(items, dict) else "a list"
    if kind == "object":
        keys = sorted(node.get("properties", {}))
        if keys:
            return "a mapping with the keys " + ", ".join(keys)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"a mapping of names to {describe_schema(extra)}"
        return "a mapping"
    return "see values.yaml"
