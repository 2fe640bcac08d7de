"""merge_values, parse_set and load_values: Helm's semantics, pallet-dev's messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pallet_dev.chart.constants import DEFAULT_NODE_PORT
from pallet_dev.chart.helm_merge import merge_values, parse_set
from pallet_dev.chart.loader import load_values
from pallet_dev.chart.model import ChartValues
from pallet_dev.errors import ConfigError
from tests.chart.conftest import CHART_DIR, REPO

BCRYPT_LINE = "pallet:$2b$10$7Ml9oCtJcH3ez32Ike0OXephfBwWpHX0AG3Xy3GGOLAWy/eIBz4b."


# --- --set ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("service.nodePort=30051", {"service": {"nodePort": 30051}}),
        ("a=true,b=False,c=null", {"a": True, "b": False, "c": None}),
        ("a=0,b=012,c=-3,d=1.5,e=", {"a": 0, "b": "012", "c": -3, "d": "1.5", "e": ""}),
        ("a=9223372036854775808", {"a": "9223372036854775808"}),
        (r"a=x\,y,b\.c=d", {"a": "x,y", "b.c": "d"}),
        ("a={x,2,true}", {"a": ["x", 2, True]}),
        ("a.b=1,a.c=2", {"a": {"b": 1, "c": 2}}),
        ("a=b=c", {"a": "b=c"}),
    ],
)
def test_parse_set_types_values_like_helm(expr: str, expected: dict[str, Any]) -> None:
    assert parse_set(expr) == expected


@pytest.mark.parametrize("expr", ["", "novalue", "a..b=1", "list[0]=x"])
def test_parse_set_rejects_what_it_cannot_parse(expr: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_set(expr)
    assert caught.value.message.startswith("--set")


# --- merge ------------------------------------------------------------------------


def test_merge_values_deep_merges_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    merged = merge_values(base, {"a": {"c": [3]}}, {"a": {"e": 5}})
    assert merged == {"a": {"b": 1, "c": [3], "e": 5}, "d": "x"}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}, "inputs are not modified"


def test_merge_values_null_removes_a_default_and_later_overlays_win() -> None:
    base = {"a": {"b": 1, "n": None}, "top": 1}
    assert merge_values(base, {"a": {"b": None}}) == {"a": {"n": None}, "top": 1}
    assert merge_values(base, {"top": None}) == {"a": {"b": 1, "n": None}}
    assert merge_values(base, {"a": {"b": None}}, {"a": {"b": 2}}) == {
        "a": {"b": 2, "n": None},
        "top": 1,
    }
    # a scalar over a table (and the reverse) replaces it, as Helm's user values do
    assert merge_values(base, {"a": "flat"}) == {"a": "flat", "top": 1}


# --- load_values --------------------------------------------------------------------


def test_defaults_plus_dev_values() -> None:
    values = load_values(CHART_DIR)
    assert values.service.node_port == DEFAULT_NODE_PORT
    assert values.persistence.size == "100Mi"
    assert values.image_ref == "registry:3.1.2"
    assert load_values(CHART_DIR, include_dev=False).persistence.size == "10Gi"


def test_precedence_files_then_sets(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("service:\n  nodePort: 30060\npersistence:\n  size: 1Gi\n")
    second = tmp_path / "second.yaml"
    second.write_text("service:\n  nodePort: 30061\n")
    values = load_values(
        CHART_DIR, [first, second], ["persistence.hostPath.enabled=true", "service.nodePort=30062"]
    )
    assert values.service.node_port == 30062
    assert values.persistence.size == "1Gi"
    assert values.persistence.host_path.enabled


def test_htpasswd_entries_and_rules() -> None:
    ok = load_values(
        CHART_DIR,
        set_overrides=["auth.htpasswd.enabled=true", f"auth.htpasswd.entries={{{BCRYPT_LINE}}}"],
    )
    assert ok.auth.htpasswd.entries == [BCRYPT_LINE]
    with pytest.raises(ConfigError) as caught:
        load_values(
            CHART_DIR,
            set_overrides=[
                "auth.htpasswd.existingSecret=users",
                f"auth.htpasswd.entries={{{BCRYPT_LINE}}}",
            ],
        )
    assert caught.value.message.startswith("--set auth.htpasswd.entries=")
    assert ": auth.htpasswd.entries: must be empty when existingSecret is set" in str(caught.value)


def test_rule_errors_name_the_source_that_triggered_them(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("# mine\nreplicaCount: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_values(CHART_DIR, [user])
    assert caught.value.message.startswith(f"{user}:2: registry.httpSecret.existingSecret: ")


def test_set_errors_name_the_set_expression() -> None:
    with pytest.raises(ConfigError) as caught:
        load_values(CHART_DIR, set_overrides=["service.nodePort=http"])
    assert caught.value.message == (
        "--set service.nodePort=http: service.nodePort: must be an integer "
        '(got "http"; allowed: an integer from 30000 to 32767).'
    )


def test_yaml_syntax_errors_name_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("service:\n  nodePort: 30050\n   type: NodePort\n")
    with pytest.raises(ConfigError) as caught:
        load_values(CHART_DIR, [broken])
    assert caught.value.message.startswith(f"{broken}:3: invalid YAML")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- a\n- b\n", "must be a mapping"), ("1: x\n", "must be a string")],
)
def test_values_files_must_be_string_keyed_mappings(
    tmp_path: Path, text: str, expected: str
) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_values(CHART_DIR, [odd])


def test_missing_values_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="values file not found"):
        load_values(CHART_DIR, [tmp_path / "nope.yaml"])


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("service:\n  nodePort: 1\n  port: 0\nimage:\n  pullPolicy: x\nfoo: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_values(CHART_DIR, [bad])
    message = caught.value.message
    assert "service.nodePort" in message and "service.port" in message
    assert "more problem(s) not shown" in message


def test_model_is_strict_and_frozen() -> None:
    with pytest.raises(ValueError):
        ChartValues.model_validate({"service": {"nodePort": "30050"}})
    values = ChartValues()
    with pytest.raises(ValueError):
        values.replica_count = 2  # type: ignore[misc]
    assert values.registry.termination_grace_period_seconds == 3 + 20 + 5


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, pallet_dev.chart; "
        "print(sorted(m for m in ('pydantic', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
