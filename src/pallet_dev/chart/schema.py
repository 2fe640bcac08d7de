"""Generate the chart's ``values.schema.json`` from :class:`ChartValues`.

The model is the one source of truth; the committed schema is its output. The schema
is self-contained (no ``$ref``), draft-07, and closed (``additionalProperties: false``)
so every Helm 3 and 4 version rejects the same values as the model.

Usage::

    python -m pallet_dev.chart.schema --check   # exit 1 when the committed file differs
    python -m pallet_dev.chart.schema --write   # rewrite it
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pallet_dev.chart.constants import CHART_NAME, SCHEMA_FILE
from pallet_dev.chart.model import ChartValues

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
_SUBSCHEMA_LISTS = ("anyOf", "allOf", "oneOf")
_SUBSCHEMA_KEYS = ("items", "additionalProperties", "if", "then", "else", "not")
# Keywords a reader looks for first; the rest keep pydantic's (sorted) order.
_LEADING_KEYS = ("$schema", "title", "description", "type", "default", "enum", "properties")


@functools.cache
def _generated() -> str:
    raw = ChartValues.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    body = _clean(_require_sections(_inline(raw, definitions)), keep_title=True)
    schema = {"$schema": JSON_SCHEMA_DRAFT, **body}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def values_schema() -> dict[str, Any]:
    """The JSON schema of the chart's values (a fresh copy; callers may modify it)."""
    loaded: dict[str, Any] = json.loads(_generated())
    return loaded


def render_schema() -> str:
    """The exact text of ``values.schema.json``."""
    return _generated()


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        target = copy.deepcopy(definitions[name])
        # the referring field's description wins over the model's docstring
        return _inline({**target, **siblings}, definitions)
    return {key: _inline(value, definitions) for key, value in node.items()}


def _require_sections(node: dict[str, Any]) -> dict[str, Any]:
    """Make every non-nullable key of the values tree required.

    values.yaml sets every key, so a key is only missing after a user's null removed
    the chart's default (Helm's way to delete a key); the templates need those keys.
    Only the tree under ``properties`` is affected, not list items or free-form maps.
    ``load_values`` applies the same rule (:func:`missing_keys`).
    """
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return node
    required = [name for name, child in properties.items() if not _nullable(child)]
    extra = [name for name in node.get("required", []) if name not in required]
    return {
        **node,
        "properties": {name: _require_sections(child) for name, child in properties.items()},
        "required": required + extra,
    }


def _nullable(node: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in node.get("anyOf", []))


def missing_keys(values: Any, schema: dict[str, Any] | None = None) -> list[tuple[str, ...]]:
    """Paths the schema requires but ``values`` lacks (after a null removed a default)."""
    node = values_schema() if schema is None else schema
    if not isinstance(values, dict):
        return []
    missing: list[tuple[str, ...]] = []
    properties = node.get("properties", {})
    for name in node.get("required", []):
        if name not in values:
            missing.append((name,))
        elif name in properties:
            missing.extend((name, *path) for path in missing_keys(values[name], properties[name]))
    return missing


def _clean(node: dict[str, Any], *, keep_title: bool = False) -> dict[str, Any]:
    """Drop pydantic's per-field titles; recurse through schema positions only."""
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and not keep_title:
            continue
        if key == "properties":
            cleaned[key] = {name: _clean(child) for name, child in value.items()}
        elif key in _SUBSCHEMA_LISTS:
            cleaned[key] = [_clean(child) for child in value]
        elif key in _SUBSCHEMA_KEYS and isinstance(value, dict):
            cleaned[key] = _clean(value)
        else:
            cleaned[key] = value
    leading = [key for key in _LEADING_KEYS if key in cleaned]
    return {key: cleaned[key] for key in (*leading, *sorted(set(cleaned) - set(leading)))}


def default_chart_dir() -> Path:
    """``charts/pallet-registry`` under the current folder, else in this source tree."""
    candidates = (
        Path.cwd() / "charts" / CHART_NAME,
        Path(__file__).resolve().parents[3] / "charts" / CHART_NAME,
    )
    return next((path for path in candidates if path.is_dir()), candidates[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pallet_dev.chart.schema",
        description="Generate the chart's values.schema.json from the pydantic model.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 when the file differs")
    action.add_argument("--write", action="store_true", help="rewrite the file")
    parser.add_argument("--chart-dir", type=Path, default=None, help="the chart folder")
    args = parser.parse_args(argv)
    target = (args.chart_dir or default_chart_dir()) / SCHEMA_FILE
    expected = render_schema()
    if args.write:
        target.write_text(expected, encoding="utf-8")
        print(f"wrote {target}")
        return 0
    try:
        current = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current != expected:
        print(
            f"{target} is out of date with pallet_dev.chart.model.ChartValues; "
            "run: python -m pallet_dev.chart.schema --write",
            file=sys.stderr,
        )
        return 1
    print(f"{target} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
