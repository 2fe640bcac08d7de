"""Usage errors without Typer (bypass.py, grammar.py) read exactly as on the Typer path.

entry.py reports the usage errors it is sure of before importing Typer, so bad input fails
fast. These tests hold the two paths together: the grammar table against the Typer app,
every message byte for byte against cli.run for a list of bad command lines and for
generated ones, and every command line the fast path accepts against what Typer parses.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
import tempfile
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet_dev import bypass, cli, grammar
from pallet_dev.grammar import COMMANDS, GLOBAL, Grammar
from pallet_dev.outcome import report_usage
from tests.conftest import clear_config_env
from tests.support.fast_path import heavy_modules_probe

# the usage errors issue 13 names, and their neighbours: each is decided without Typer
BAD_COMMAND_LINES = [
    ["up", "--port", "abc"],
    ["up", "--port=abc"],
    ["--bogus"],
    ["--bogus", "up"],
    ["-x", "up"],
    ["up", "--backend", "bogus"],
    ["up", "--backend", "Kind"],
    ["down", "--backend", "both"],
    ["doctor", "--backend="],
    ["dev", "--backend", "x", "a"],
    ["nosuchcommand"],
    ["upp"],
    ["stat"],
    [""],
    ["up", "--bogus"],
    ["up", "--bac", "kind"],
    ["up", "--hel"],
    ["up", "-x"],
    ["up", "-zf"],
    ["up", "-fv", "--bogus"],
    ["logs", "-1"],
    ["up", "--port"],
    ["up", "-f"],
    ["--config"],
    ["-c"],
    ["health", "--timeout"],
    ["health", "--timeout", "abc"],
    ["health", "--timeout", ""],
    ["health", "--timeout", " "],
    ["dev", "--cycle-timeout", "soon"],
    ["logs", "a", "--tail", "x"],
    ["up", "--port", "--json"],
    ["up", "--json=1"],
    ["up", "--no-recreate=yes"],
    ["--debug=1", "up"],
    ["--version=1"],
    ["up", "--help=1"],
    ["push"],
    ["push", "--json"],
    ["logs"],
    ["logs", "--tail", "x"],
    ["status", "extra"],
    ["push", "a", "b", "c"],
    ["up", "--", "x"],
    ["up", "--port", "abc", "--port", "def"],
    ["up", "--port", "abc", "--bogus"],
    ["up", "--timeout", "x", "--port", "y"],
    ["-v", "up", "--port", "abc"],
    ["--debug", "up", "--backend", "bogus"],
    ["--config", "team.yaml", "up", "--port", "abc"],
    ["-c", "team.yaml", "nosuchcommand"],
    ["up", "--backend", "x" * 400],
    ["up", "--" + "x" * 400],
    ["push", "a", "--as"],
]

# a vocabulary for generated command lines: names, options, values, near misses
TOKENS = [
    *COMMANDS, "upp", "stat", "nosuch", "", "-", "--",
    "--config", "-c", "--config=f.yaml", "f.yaml", "-v", "--verbose", "--debug", "--bogus",
    "--backend", "--backend=kind", "--backend=bogus", "auto", "kind", "docker", "Docker",
    "--port", "--port=5001", "5001", "abc", "-1", "0", "1.5", "1e3", "inf", "nan", "5_001",
    " 7 ", "١٢", "--timeout", "--timeout=2", "--timeout=x", "--cycle-timeout", "--tail",
    "--json", "--json=1", "--prefer-docker", "--recreate", "--no-recreate", "--dry-run",
    "--values", "-f", "-fv", "-fx", "--set", "a=b", "--as", "--clean", "--follow", "-x",
    "--hel", "--tim", "img:dev", "agent-a",
]  # fmt: skip
# the keyword each option of the fast path reaches the command with
KEYWORDS = {
    "--json": "as_json", "--as": "as_name", "--values": "values_files",
    "--set": "set_overrides", "--follow": "follow", "--tail": "tail",
}  # fmt: skip
OPERANDS = {"push": "image", "logs": "agent", "dev": "agents"}
RUNNERS = {
    "up": "up.run_up", "down": "down.run_down", "health": "health.run_health",
    "status": "status.run_status", "dev": "dev.run_dev", "logs": "logs.run_logs",
    "push": "push.run_push", "doctor": "doctor.run_doctor", "gc": "gc.run_gc",
}  # fmt: skip


@contextmanager
def recording(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Run in ``folder``, its own PALLET_DEV_HOME; every command records its arguments."""
    clear_config_env(monkeypatch)
    monkeypatch.setenv("PALLET_DEV_HOME", str(folder / "home"))
    monkeypatch.delenv("_PALLET_DEV_COMPLETE", raising=False)
    monkeypatch.chdir(folder)
    calls: list[Any] = []
    for command, target in RUNNERS.items():

        def record(ctx: object, *args: object, _name: str = command, **kwargs: object) -> int:
            calls.append((_name, args, kwargs))
            return 0

        monkeypatch.setattr(f"pallet_dev.commands.{target}", record)
    yield calls


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    with recording(tmp_path, monkeypatch) as calls:
        yield calls


def typer_path(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.run(argv)
    return code, err.getvalue()


def fast_path(argv: list[str]) -> tuple[int, str] | bypass.CommandLine | None:
    line = bypass.read_command_line(argv)
    if not isinstance(line, bypass.Usage):
        return line
    err = io.StringIO()
    with redirect_stderr(err):
        code = report_usage(line.message, line.command)
    return code, err.getvalue()


@pytest.mark.parametrize("argv", BAD_COMMAND_LINES, ids=" ".join)
def test_each_usage_error_reads_the_same_on_both_paths(sandbox: list[Any], argv: list[str]) -> None:
    fast = fast_path(argv)
    assert isinstance(fast, tuple), f"the fast path did not decide {argv}: {fast}"
    assert fast == typer_path(argv)
    code, err = fast
    assert code == 2 and err.startswith("pallet-dev: error: ") and "\n  fix: " in err


def test_a_question_ends_the_sentence(sandbox: list[Any]) -> None:
    fast = fast_path(["helth"])
    assert fast == typer_path(["helth"])
    assert isinstance(fast, tuple)
    assert "pallet-dev: error: No such command 'helth'. Did you mean 'health'?\n" in fast[1]


def test_an_unusable_home_is_reported_first_as_on_the_typer_path(
    sandbox: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PALLET_DEV_HOME", str(tmp_path / "file"))
    # Typer's root callback opens the home after the global options, before the command's
    assert fast_path(["up", "--port", "abc"]) is None
    assert "PALLET_DEV_HOME=" in typer_path(["up", "--port", "abc"])[1]
    assert fast_path(["--bogus"]) == typer_path(["--bogus"])
    assert fast_path(["upp"]) == typer_path(["upp"])


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["up", "--help"], ["up", "--port", "abc", "-h"], ["--version"], ["-v"],
     ["up", "--port", "5_001"], ["up", "--port", "-1"], ["health", "--timeout", "1e3"],
     ["up", "\x1b[31m"], ["--", "up"], ["-"], ["--config=", "up"]],
    ids=repr,
)  # fmt: skip
def test_what_only_typer_can_judge_is_left_to_it(sandbox: list[Any], argv: list[str]) -> None:
    assert fast_path(argv) is None


# derandomized: the same examples on every run, so CI's verdict does not depend on luck
settings.register_profile(
    "usage",
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# values for each kind of option: plain ones the fast path takes, some it leaves to Typer
SAMPLE: dict[Any, list[str]] = {
    grammar.integer: ["5001", "0", "007", "x", "-2", "+1", "1.0"],
    grammar.number: ["2", "2.5", "0", "300", "0.0", "61", "abc", "1e2"],
    grammar.text: ["a=b", "", "-x"],
    grammar.path: ["f.yaml", ""],
}


@st.composite
def grammatical(draw: st.DrawFn) -> list[str]:
    """A command line built from the grammar: mostly valid, sometimes not."""

    def options(table: Grammar) -> list[str]:
        words: list[str] = []
        for option in draw(st.lists(st.sampled_from(table.options), max_size=3)):
            name = draw(st.sampled_from([*option.names, *filter(None, [option.off])]))
            if option.value is None:
                words.append(name)
                continue
            convert = option.value
            values = convert.names if isinstance(convert, grammar.Choice) else SAMPLE[convert]
            value = draw(st.sampled_from(values))
            long_form = name.startswith("--") and draw(st.booleans())
            words += [f"{name}={value}"] if long_form else [name, value]
        return words

    command = draw(st.sampled_from(list(COMMANDS)))
    table = COMMANDS[command]
    operands = draw(st.lists(st.sampled_from(["img:dev", "agent-a"]), max_size=2))
    if not table.operands and draw(st.booleans()):
        operands = []
    words = options(table)
    words = words + operands if draw(st.booleans()) else operands + words
    return [*options(GLOBAL), command, *words]


@settings(settings.get_profile("usage"))
@given(
    option=st.sampled_from([["up", "--port"], ["logs", "a", "--tail"], ["health", "--timeout"],
                            ["dev", "--cycle-timeout"], ["down", "--backend"]]),
    value=st.one_of(
        st.text(max_size=12), st.from_regex(r"[ +-]?[0-9_.eE]{0,6}[ a-z]?", fullmatch=True)
    ),
)  # fmt: skip
def test_any_value_of_a_typed_option_agrees_with_typer(option: list[str], value: str) -> None:
    assert_agrees([*option, value])


@settings(settings.get_profile("usage"))
@given(argv=st.one_of(st.lists(st.sampled_from(TOKENS), max_size=6), grammatical()))
def test_generated_command_lines_agree_with_typer(argv: list[str]) -> None:
    assert_agrees(argv)


def assert_agrees(argv: list[str]) -> None:
    """A decided usage error is Typer's, byte for byte; an accepted line, what Typer parses."""
    with (
        tempfile.TemporaryDirectory(prefix="pdt-usage-") as folder,
        pytest.MonkeyPatch.context() as monkeypatch,
        recording(Path(folder), monkeypatch) as calls,
    ):
        fast = fast_path(argv)
        if fast is None:
            return
        typer_result = typer_path(argv)
        if isinstance(fast, tuple):
            assert fast == typer_result, argv
            return
        assert typer_result == (0, ""), (argv, typer_result)
        [(command, args, kwargs)] = calls
        assert command == fast.command
        for key, value in fast.values.items():
            if key == "operands":
                if command in OPERANDS:
                    named = kwargs.get(OPERANDS[command], args[0] if args else None)
                    assert [named] == value or named == value
            else:
                name = KEYWORDS.get(key, key[2:].replace("-", "_"))
                reached = kwargs[name]
                assert (reached.value if isinstance(reached, Enum) else reached) == value


def _typer_grammar(command: Any) -> dict[str, Any]:
    """What the grammar table must say of one Typer command (or of the group)."""
    options: dict[str, Any] = {}
    operands = []
    for param in command.params:
        if param.param_type_name == "argument":
            operands.append((param.name, param.required, param.nargs == -1))
            continue
        if "--version" in param.opts:
            continue  # eager: the fast path leaves it to Typer
        # the fast path converts only what Typer converts as it is: no callback, range,
        # parser, variable or case folding that would change a value or its message
        info = param.type_descriptor.parameter_info
        assert (param.callback, param.envvar, param.min, param.max, info.parser) == (None,) * 5
        assert info.case_sensitive and param.nargs == 1 and not param.count
        annotation = param.type_descriptor.annotation
        if param.multiple:
            (annotation,) = get_args(annotation)
        kind: Any = None if param.is_flag else annotation.__name__
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            kind = tuple(member.value for member in annotation)
        options[param.opts[0]] = (
            tuple(param.opts),
            tuple(param.secondary_opts),
            bool(param.multiple),
            kind,
        )
    return {"options": options, "operands": operands}


CONVERTERS = {grammar.integer: "int", grammar.number: "float", grammar.text: "str",
              grammar.path: "Path"}  # fmt: skip


def _table_grammar(table: Grammar) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for option in table.options:
        convert = option.value
        kind = convert.names if isinstance(convert, grammar.Choice) else CONVERTERS.get(convert)
        off = () if option.off is None else (option.off,)
        options[option.key] = (option.names, off, option.multiple, kind)
    operands = [(operand.name, operand.required, operand.many) for operand in table.operands]
    return {"options": options, "operands": operands}


def test_the_grammar_table_is_the_typer_apps() -> None:
    group = typer.main.get_command(cli.app)
    import typer._click as click

    ctx = click.Context(group, info_name="pallet-dev")
    assert list(COMMANDS) == group.list_commands(ctx)
    assert _table_grammar(GLOBAL) == _typer_grammar(group)
    for name, table in COMMANDS.items():
        assert _table_grammar(table) == _typer_grammar(group.get_command(ctx, name)), name


def test_a_usage_error_imports_no_typer_pydantic_or_yaml(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALLET_DEV_")}
    env["PALLET_DEV_HOME"] = str(tmp_path / "home")
    for argv in (["up", "--port", "abc"], ["--bogus"], ["up", "--backend", "bogus"], ["nosuch"]):
        result = subprocess.run(
            [sys.executable, "-c", heavy_modules_probe(), *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines()[-1] == "[]", (argv, result.stderr)
        assert result.stderr.startswith("pallet-dev: error: ")
