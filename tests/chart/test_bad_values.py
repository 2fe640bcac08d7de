"""Bad values are rejected by Helm (values.schema.json) and by pallet-dev (the pydantic
model) alike, and both name the same field.

Each file in bad-values/ starts with `# field: <dotted.path>`: the field both must name.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from pallet_dev.chart.helm_merge import merge_values
from pallet_dev.chart.loader import load_values
from pallet_dev.chart.schema import values_schema
from pallet_dev.errors import EXIT_USAGE, ConfigError
from tests.chart.conftest import BAD_VALUES_DIR, CHART_DIR, Helm

BAD_FILES = sorted(BAD_VALUES_DIR.glob("*.yaml"))


def expected_field(path: Path) -> str:
    match = re.match(r"# field: (\S+)\n", path.read_text())
    assert match, f"{path.name} must start with '# field: <dotted.path>'"
    return match.group(1)


def helm_names_field(stderr: str, field: str) -> bool:
    """Helm's schema errors name a field as `at '/a/b'`, or for unknown and missing keys
    as `at '/a': additional properties 'b' ...` / `missing property 'b'`."""
    parts = field.split(".")
    if f"at '/{'/'.join(parts)}'" in stderr:
        return True
    parent = "/" + "/".join(parts[:-1]) if len(parts) > 1 else ""
    return any(
        f"at '{parent}'" in line and f"'{parts[-1]}'" in line for line in stderr.splitlines()
    )


def test_every_bad_values_file_declares_its_field() -> None:
    assert len(BAD_FILES) >= 10
    for path in BAD_FILES:
        expected_field(path)


@pytest.mark.parametrize("bad_file", BAD_FILES, ids=lambda path: path.stem)
def test_model_rejects_and_names_the_field(bad_file: Path) -> None:
    field = expected_field(bad_file)
    with pytest.raises(ConfigError) as caught:
        load_values(CHART_DIR, [bad_file])
    message = caught.value.message
    assert caught.value.exit_code == EXIT_USAGE
    # "<file:line>: <field.path>: <what is wrong> (got <value>; allowed: <...>)."
    first = message.split(". ")[0]
    assert first.startswith(f"{bad_file}:"), message
    assert f": {field}: " in first, message
    assert "(got " in first and "; allowed: " in first, message


@pytest.mark.parametrize("bad_file", BAD_FILES, ids=lambda path: path.stem)
def test_committed_schema_rejects_them_too(bad_file: Path) -> None:
    """The same schema Helm enforces, checked in-process (fast, and names the path)."""
    import yaml

    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    merged = merge_values(defaults, yaml.safe_load(bad_file.read_text()))
    validator = jsonschema.Draft7Validator(values_schema())
    errors = list(validator.iter_errors(merged))
    assert errors, f"the schema accepts {bad_file.name}"


@pytest.mark.helm
@pytest.mark.parametrize("bad_file", BAD_FILES, ids=lambda path: path.stem)
def test_helm_rejects_and_names_the_field(helm: Helm, bad_file: Path) -> None:
    field = expected_field(bad_file)
    result = helm.template(bad_file)
    assert result.returncode != 0, f"{helm.name} accepted {bad_file.name}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert helm_names_field(
        result.stderr, field
    ), f"{helm.name} did not name {field}:\n{result.stderr}"


@pytest.mark.helm
def test_helm_lint_strict_rejects_a_bad_file(helm: Helm) -> None:
    bad = BAD_VALUES_DIR / "node-port-above-range.yaml"
    result = helm.run("lint", "--strict", str(CHART_DIR), "--values", str(bad))
    assert result.returncode != 0
    assert "/service/nodePort" in result.stdout + result.stderr
