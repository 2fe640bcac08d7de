"""The runner, with real `python -c` processes standing in for tools."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from pallet_dev.errors import CommandFailed, CommandTimeout, ToolNotFound
from pallet_dev.eventlog import EventLog, redact_argv
from pallet_dev.runner import Runner

PY = sys.executable


def test_success_returns_frozen_result() -> None:
    result = Runner().run([PY, "-c", "print('out'); import sys; print('err', file=sys.stderr)"])
    assert result.ok and result.stdout == "out\n" and result.stderr == "err\n"
    with pytest.raises(AttributeError):
        result.returncode = 1  # type: ignore[misc]


def test_failure_carries_command_code_and_stderr_tail() -> None:
    script = "import sys; [print(f'line {i}', file=sys.stderr) for i in range(20)]; sys.exit(3)"
    with pytest.raises(CommandFailed) as caught:
        Runner().run([PY, "-c", script])
    error = caught.value
    assert error.returncode == 3 and error.argv[1] == "-c"
    assert "line 19" in str(error) and "line 0\n" not in str(error)
    assert "exited with code 3" in str(error)


def test_check_false_returns_the_failure() -> None:
    assert Runner().run([PY, "-c", "raise SystemExit(5)"], check=False).returncode == 5


def test_timeout_stops_the_tool_and_its_children() -> None:
    script = (
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        Runner().run([PY, "-c", script], timeout=0.5)
    assert time.monotonic() - started < 10
    assert "did not finish within 0.5 s" in str(caught.value)


def test_live_output_comes_in_order_and_ends_with_the_tool() -> None:
    """`on_output` (build and push output): every line, then the exit status; on_start
    before the first line."""
    seen: list[str] = []
    script = "import sys; [print(f'step {i}', flush=True) for i in range(3)]; sys.exit(3)"
    result = Runner().run(
        [PY, "-c", script],
        on_output=seen.append,
        on_start=lambda: seen.append("started"),
        check=False,
    )
    assert seen == ["started", "step 0", "step 1", "step 2"]
    assert result.returncode == 3 and result.stdout == "step 0\nstep 1\nstep 2\n"


def test_live_output_times_out_and_stops_the_tool_and_its_children() -> None:
    script = (
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print('building', flush=True); time.sleep(60)"
    )
    seen: list[str] = []
    with pytest.raises(CommandTimeout) as caught:
        Runner().run([PY, "-c", script], timeout=0.5, on_output=seen.append)
    assert "did not finish within 0.5 s" in str(caught.value)
    assert seen == ["building"]


def test_a_tool_that_exits_while_its_child_holds_the_output_returns() -> None:
    """The tool's end, not its output's, ends the wait (a child may keep the pipe open)."""
    script = (
        "import subprocess, sys;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5)']);"
        "print('done', flush=True)"
    )
    seen: list[str] = []
    result = Runner().run([PY, "-c", script], on_output=seen.append, timeout=30)
    assert result.ok and seen == ["done"]


def test_missing_tool_is_a_typed_error_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFound) as caught:
        Runner().run(["kind", "get", "clusters"])
    assert caught.value.exit_code == 3 and caught.value.tool == "kind"
    assert "'kind' was not found on PATH" in str(caught.value)
    assert "go install sigs.k8s.io/kind@" in str(caught.value)
    assert not Runner().has("kind")


def test_environment_is_merged_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALLET_TEST_OUTER", "outer")
    runner = Runner(env={"PALLET_TEST_RUNNER": "runner"})
    script = (
        "import os, json; print(json.dumps([os.environ.get(k) for k in "
        "('PALLET_TEST_OUTER', 'PALLET_TEST_RUNNER', 'PALLET_TEST_CALL', 'PATH')]))"
    )
    out = runner.run([PY, "-c", script], env={"PALLET_TEST_CALL": "call"}).stdout
    outer, from_runner, call, path = json.loads(out)
    assert (outer, from_runner, call) == ("outer", "runner", "call")
    assert path == os.environ["PATH"]


def test_stdin_is_closed_unless_input_is_given() -> None:
    script = "import sys; print(repr(sys.stdin.read()))"
    assert Runner().run([PY, "-c", script]).stdout.strip() == "''"
    assert Runner().run([PY, "-c", script], input="data").stdout.strip() == "'data'"


def test_argv_is_never_split_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    out = Runner().run([PY, "-c", "import sys; print(sys.argv[1])", f"; touch {marker}"]).stdout
    assert out.strip() == f"; touch {marker}" and not marker.exists()


def test_every_call_is_logged_as_json_lines_with_secrets_masked(tmp_path: Path) -> None:
    log_path = tmp_path / "log" / "pallet-dev.log"
    runner = Runner(EventLog(log_path, command="up"))
    runner.run([PY, "-c", "pass", "--password", "hunter2", "TOKEN=abc"], step="demo")
    with pytest.raises(CommandFailed):
        runner.run([PY, "-c", "raise SystemExit(2)"], step="fails")
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["exec", "exit", "exec", "exit"]
    assert records[1]["exit_code"] == 0 and records[3]["exit_code"] == 2
    assert records[1]["step"] == "demo" and "duration_s" in records[1]
    assert "hunter2" not in log_path.read_text() and "abc" not in records[0]["argv"][-1]
    assert records[0]["command"] == "up"


def test_redaction_rules() -> None:
    assert redact_argv(["helm", "--set", "auth.password=x", "--password", "p", "-p", "5000"]) == [
        "helm",
        "--set",
        "auth.password=***",
        "--password",
        "***",
        "-p",
        "5000",
    ]


def test_unwritable_log_never_breaks_the_command(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    runner = Runner(EventLog(blocker / "sub" / "log"))
    assert runner.run([PY, "-c", "pass"]).ok


def test_a_tool_that_is_not_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "brokentool"
    tool.write_text("#!/nonexistent/interpreter\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(CommandFailed) as caught:
        Runner().run(["brokentool"])
    assert caught.value.returncode == 127
