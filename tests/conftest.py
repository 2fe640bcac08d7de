"""Shared pytest fixtures and the skip-or-fail rule for real-component tests.

Tests that need Docker, helm or kind skip on a laptop without them. CI sets
``PALLET_DEV_REQUIRE_REAL=1``: then a missing component fails the test instead,
so a green CI means the real paths ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_REAL = os.environ.get("PALLET_DEV_REQUIRE_REAL", "") not in ("", "0", "false")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; fail instead when CI demands the real components."""
    if REQUIRE_REAL:
        pytest.fail(f"{reason} (PALLET_DEV_REQUIRE_REAL is set, so this is a failure)")
    pytest.skip(reason)


def require_tool(name: str, env_var: str | None = None) -> str:
    """Return the path of a real CLI, or skip/fail when it is absent."""
    if env_var and os.environ.get(env_var):
        path = os.environ[env_var]
        if os.access(path, os.X_OK):
            return path
        skip_or_fail(f"{env_var}={path} is not an executable")
    found = shutil.which(name)
    if not found:
        skip_or_fail(f"'{name}' is not installed")
    assert found is not None
    return found


def clear_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every PALLET_DEV_* configuration variable (CI sets some, e.g. the node image)."""
    from pallet_dev.config_sources import ENV_FIELDS

    for var in ENV_FIELDS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _docker_cli_only_with_fakes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pallet-dev reads containers from the Docker daemon's socket when it has one
    (tools/docker_engine.py). A test with a fake docker CLI must not reach this host's
    real daemon that way: only the tests marked for real components may."""
    if not any(request.node.get_closest_marker(mark) for mark in ("docker", "kind", "kind_e2e")):
        monkeypatch.setenv("PALLET_DEV_DOCKER_API", "0")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests record with ``record_property``: "conformance" (the OCI suite's
    results) and "figure" (a measurement a real-component test makes on the way)."""
    reports = terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
    for key, title in (("conformance", "OCI conformance"), ("figure", "Figures")):
        lines = [
            str(value)
            for report in reports
            for name, value in getattr(report, "user_properties", [])
            if name == key
        ]
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.line(line)
