"""values.schema.json, values.yaml and Chart.yaml agree with the pydantic model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from pallet_dev.chart import constants as chart_constants
from pallet_dev.chart.loader import load_values
from pallet_dev.chart.model import ChartValues
from pallet_dev.chart.schema import main as schema_main
from pallet_dev.chart.schema import render_schema, values_schema
from tests.chart.conftest import CHART_DIR, DEV_VALUES, REPO, chart_kube_versions

SCHEMA = CHART_DIR / "values.schema.json"


def test_committed_schema_is_what_the_model_generates() -> None:
    assert (
        SCHEMA.read_text(encoding="utf-8") == render_schema()
    ), "values.schema.json is stale: run `python -m pallet_dev.chart.schema --write`"


def test_check_command_exit_codes(tmp_path: Path) -> None:
    env_path = str(REPO / "src")
    check = [sys.executable, "-m", "pallet_dev.chart.schema", "--check"]
    ok = subprocess.run(
        [*check, "--chart-dir", str(CHART_DIR)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr

    stale = tmp_path / "chart"
    shutil.copytree(CHART_DIR, stale)
    schema = json.loads((stale / "values.schema.json").read_text())
    schema["properties"]["service"]["properties"]["nodePort"]["maximum"] = 65535
    (stale / "values.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    drift = subprocess.run(
        [*check, "--chart-dir", str(stale)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert drift.returncode == 1
    assert "--write" in drift.stderr

    assert schema_main(["--write", "--chart-dir", str(stale)]) == 0
    assert (stale / "values.schema.json").read_text() == render_schema()
    assert schema_main(["--check", "--chart-dir", str(stale)]) == 0


def test_schema_is_valid_draft7_closed_and_self_contained() -> None:
    schema = values_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$ref" not in SCHEMA.read_text() and "$defs" not in schema

    def walk(node: dict[str, object], path: str) -> None:
        properties = node.get("properties")
        if isinstance(properties, dict):
            assert node.get("additionalProperties") is False, f"{path} is open"
            for name, child in properties.items():
                walk(child, f"{path}.{name}")

    walk(schema, "values")


def test_values_yaml_equals_the_model_defaults() -> None:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert defaults == ChartValues().model_dump(by_alias=True)
    jsonschema.Draft7Validator(values_schema()).validate(defaults)


def test_dev_values_are_valid_and_small() -> None:
    loaded = load_values(CHART_DIR)
    assert loaded.replica_count == 1
    assert loaded.persistence.size == "100Mi"
    dev = yaml.safe_load(DEV_VALUES.read_text())
    assert dev["persistence"]["size"] == "100Mi" and dev["replicaCount"] == 1


def test_chart_metadata_matches_the_constants() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == chart_constants.CHART_NAME
    assert chart["appVersion"] == chart_constants.DEFAULT_IMAGE_TAG
    major, minor, patch = (int(part) for part in chart["version"].split("."))
    assert (major, minor, patch) >= (0, 1, 0)
    low, high = chart_kube_versions()
    assert low == "1.31.0" and high == "1.37.0"


def test_default_node_port_is_in_the_static_band() -> None:
    low, high = chart_constants.STATIC_NODE_PORT_BAND
    assert low <= chart_constants.DEFAULT_NODE_PORT <= high
    assert ChartValues().service.node_port == chart_constants.DEFAULT_NODE_PORT
    assert ChartValues().persistence.host_path.path == chart_constants.NODE_DATA_PATH
