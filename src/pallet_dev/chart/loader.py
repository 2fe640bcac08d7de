"""Read the chart's values as ``helm install`` would see them, and validate them.

:func:`load_values` merges the chart's ``values.yaml``, ``values-dev.yaml``, the
user's ``--values`` files and ``--set`` overrides exactly as Helm does, validates the
result and reports the first problems as :class:`~pallet_dev.errors.ConfigError`
sentences: ``<file:line or --set>: <field.path>: <what is wrong> (got <value>;
allowed: <what is allowed>).``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pallet_dev.chart.constants import DEV_VALUES_FILE, VALUES_FILE
from pallet_dev.chart.helm_merge import merge_values, parse_set
from pallet_dev.chart.model import ChartValues
from pallet_dev.chart.report import allowed_at, format_validation_error
from pallet_dev.chart.schema import missing_keys
from pallet_dev.errors import ConfigError
from pallet_dev.yamlsource import read_yaml_mapping


@dataclass(frozen=True)
class _Source:
    """One layer of values: its data and how to name where a key came from."""

    data: dict[str, Any]
    locate: Callable[[tuple[str, ...]], str]


def _set_source(expr: str) -> _Source:
    label = f"--set {expr}"
    return _Source(parse_set(expr), lambda _loc: label)


def _read_values_file(path: Path) -> _Source:
    values = read_yaml_mapping(
        path, what="values file", keys="service, persistence, ...", flag="--values"
    )
    loaded = values.data
    if any(not isinstance(key, str) for key in _all_keys(loaded)):
        bad = next(key for key in _all_keys(loaded) if not isinstance(key, str))
        raise ConfigError(f"{path}: key {bad!r} must be a string (quote it).")
    return _Source(loaded, values.locate)


def _all_keys(data: Any) -> Iterator[Any]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _all_keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from _all_keys(item)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, str(index)))


def load_values(
    chart_dir: Path,
    values_files: Sequence[Path] = (),
    set_overrides: Sequence[str] = (),
    include_dev: bool = True,
) -> ChartValues:
    """Merge and validate the chart's values as ``helm install`` would see them.

    Order, lowest to highest: ``values.yaml``, ``values-dev.yaml`` (``include_dev``),
    ``values_files`` in order, ``set_overrides`` in order. Raises
    :class:`~pallet_dev.errors.ConfigError` naming the file:line (or ``--set``), the
    field path, what is wrong, the value and what is allowed.
    """
    defaults = _read_values_file(chart_dir / VALUES_FILE)
    overlays: list[_Source] = []
    if include_dev:
        overlays.append(_read_values_file(chart_dir / DEV_VALUES_FILE))
    overlays.extend(_read_values_file(Path(path)) for path in values_files)
    overlays.extend(_set_source(expr) for expr in set_overrides)

    origins = _Origins()
    for rank, source in enumerate((defaults, *overlays)):
        for path in _paths(source.data):
            origins.record(path, rank, source)

    merged = merge_values(defaults.data, *(source.data for source in overlays))
    removed = missing_keys(merged)
    if removed:
        path = removed[0]
        raise ConfigError(
            f"{origins.where([path])}: {'.'.join(path)}: is required; null removes the chart's "
            f"default (got null; allowed: {allowed_at(path)}).",
            hint="Drop the null override to keep the default.",
        )
    try:
        return ChartValues.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, origins.where),
            hint=f"See {chart_dir / VALUES_FILE} for every key and its default.",
        ) from None


class _Origins:
    """Which layer set each key path last, to name it (file:line or --set) in errors."""

    def __init__(self) -> None:
        self._by_path: dict[tuple[str, ...], tuple[int, _Source]] = {}

    def record(self, path: tuple[str, ...], rank: int, source: _Source) -> None:
        if path:
            self._by_path[path] = (rank, source)

    def _find(self, loc: tuple[str, ...]) -> tuple[int, tuple[str, ...], _Source] | None:
        for size in range(len(loc), 0, -1):
            found = self._by_path.get(loc[:size])
            if found is not None:
                return found[0], loc[:size], found[1]
        return None

    def where(self, candidates: Sequence[tuple[str, ...]]) -> str:
        """The layer that set the first candidate path, or a later one that set another."""
        best: tuple[int, tuple[str, ...], _Source] | None = None
        for loc in candidates:
            found = self._find(loc)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return best[2].locate(best[1]) if best is not None else "values"
