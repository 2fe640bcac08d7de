"""Keep the docs honest: every `pallet-dev` command they show parses against the real CLI.

Invocations are taken from README.md, CLAUDE.md and docs/**/*.md: shell lines in fenced
code blocks and inline code spans. Each is parsed by the real Typer app (the subcommand
exists, every option exists and takes a value only when it should, values have the right
type). A placeholder such as `<port>` or `PORT` stands for any value: the option must
exist, its value is not checked. Also checked: the README's fixed quickstart, the
exit-code table, environment variables, script paths and relative links.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import typer.core
import typer.main
from typer.exceptions import TyperException

from pallet_dev import errors
from pallet_dev.chart.release import DESCRIPTION_PREFIX
from pallet_dev.cli import app
from pallet_dev.config import ENV_FIELDS, Config, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CLAUDE.md",
    *sorted((REPO_ROOT / "docs").rglob("*.md")),
]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh", "shell-session"}
PLACEHOLDER = "__PLACEHOLDER__"
_ANGLE_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_.:/-]*>")
_CAPS_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# "$" is a console prompt left in an inline span
_WRAPPERS = {"$", "sudo", "env", "time", "exec", "command", "nohup"}
_OPERATOR_CHARS = set("();<>|&")


@dataclass(frozen=True)
class Invocation:
    where: str  # file:line
    args: tuple[str, ...]  # what follows `pallet-dev`

    def __str__(self) -> str:
        return f"{self.where}: pallet-dev {' '.join(self.args)}"


# --- extraction -------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    text = _ANGLE_PLACEHOLDER.sub(PLACEHOLDER, text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: prose or output, not a command
        for char in _OPERATOR_CHARS:
            text = text.replace(char, f" {char} ")
        return text.split("#", 1)[0].split()


def _simple_commands(tokens: list[str]) -> list[list[str]]:
    """Split at shell operators (;, &&, |, (, ), redirections)."""
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token and set(token) <= _OPERATOR_CHARS:
            if ("<" in token or ">" in token) and commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()  # the fd of `2>&1`
            commands.append([])
            continue
        commands[-1].append(token)
    return [command for command in commands if command]


def invocations_in_shell(text: str) -> list[tuple[str, ...]]:
    """The argument lists of every `pallet-dev` run in one shell line."""
    found: list[tuple[str, ...]] = []
    for command in _simple_commands(_tokens(text)):
        words = list(command)
        while words and (_ASSIGNMENT.match(words[0]) or words[0] in _WRAPPERS):
            words.pop(0)
        if not words:
            continue
        program = words[0].rsplit("/", 1)[-1]
        if program == "pallet-dev":
            found.append(tuple(words[1:]))
        elif re.fullmatch(r"python(3(\.\d+)?)?", program) and words[1:3] == ["-m", "pallet_dev"]:
            found.append(tuple(words[3:]))
    return found


def extract_invocations(path: Path) -> list[Invocation]:
    lines = path.read_text(encoding="utf-8").splitlines()
    name = path.relative_to(REPO_ROOT)
    result: list[Invocation] = []
    fence: str | None = None
    language = ""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        opening = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence is None and opening:
            fence, language, block = opening.group(1), opening.group(2).lower(), []
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                if language in SHELL_LANGUAGES:
                    result += _block_invocations(name, block)
                fence = None
            else:
                block.append((number, line))
            continue
        for span in re.findall(r"(`+)(.+?)\1", line):
            code = span[1].strip()
            code = code[2:] if code.startswith("$ ") else code
            for args in invocations_in_shell(code):
                result.append(Invocation(f"{name}:{number}", args))
    return result


def _block_invocations(name: Path, block: list[tuple[int, str]]) -> list[Invocation]:
    # console transcripts: only the `$ ` lines are commands, the rest is output
    prompted = any(line.lstrip().startswith("$ ") for _, line in block)
    joined: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, line in block:
        if prompted:
            if not line.lstrip().startswith("$ "):
                continue
            line = line.lstrip()[2:]
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    if pending:
        joined.append((start, pending))
    return [
        Invocation(f"{name}:{number}", args)
        for number, text in joined
        for args in invocations_in_shell(text)
    ]


# --- parsing against the real CLI -------------------------------------------------------


def _drop_option(args: list[str], opts: list[str]) -> list[str] | None:
    """Remove one `OPT <placeholder>` / `OPT=<placeholder>` pair; None if there is none."""
    for index, token in enumerate(args):
        pair = index + 1 < len(args) and token in opts and _is_placeholder(args[index + 1])
        key, sep, value = token.partition("=")
        joined = bool(sep) and key in opts and _is_placeholder(value)
        if pair or joined:
            end = index + (2 if pair else 1)
            return args[:index] + args[end:]
    return None


def _is_placeholder(token: str) -> bool:
    return (
        PLACEHOLDER in token
        or bool(_CAPS_PLACEHOLDER.match(token))
        or bool(_ANGLE_PLACEHOLDER.fullmatch(token))
    )


def root_group() -> typer.core.TyperGroup:
    """The real CLI as Typer builds it for `pallet-dev` (its own vendored click)."""
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    return root


def parse_error(args: tuple[str, ...]) -> str | None:
    """Why ``pallet-dev ARGS`` does not parse, or None when it does."""
    root = root_group()
    remaining = list(args)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        if not remaining:
            return None  # bare `pallet-dev` prints the help
        while True:
            try:
                # make_context consumes its list: always pass a copy
                ctx = root.make_context("pallet-dev", list(remaining))
                break
            except typer.Exit:
                return None  # --help / --version
            except TyperException as exc:
                fixed = _without_placeholder(remaining, exc)
                if fixed is None:
                    return str(exc)
                remaining = fixed
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return "no subcommand"
        try:
            name, command, sub_args = root.resolve_command(ctx, rest)
        except TyperException as exc:
            return str(exc)
        assert name is not None and command is not None
        sub_args = list(sub_args)
        while True:
            try:
                command.make_context(name, list(sub_args), parent=ctx)
                return None
            except typer.Exit:
                return None
            except TyperException as exc:
                fixed = _without_placeholder(sub_args, exc)
                if fixed is None:
                    return str(exc)
                sub_args = fixed


def _without_placeholder(args: list[str], exc: Exception) -> list[str] | None:
    """A bad value that is a placeholder is not an error: drop it and parse again."""
    param = getattr(exc, "param", None)
    if param is None:
        return None
    return _drop_option(args, [*param.opts, *param.secondary_opts])


# Text pallet-dev writes that reads like a command line but is none: the kind backend's
# Helm revision description, "pallet-dev fingerprint <hash>".
NOT_COMMANDS = [DESCRIPTION_PREFIX.split()]


def _is_command(invocation: Invocation) -> bool:
    words = ["pallet-dev", *invocation.args]
    return not any(words[: len(prefix)] == prefix for prefix in NOT_COMMANDS)


ALL_INVOCATIONS = [
    inv
    for path in DOC_FILES
    if path.is_file()
    for inv in extract_invocations(path)
    if _is_command(inv)
]


# --- the checker itself is tested first, so a green run means something -----------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("pallet-dev up --port 5001", [("up", "--port", "5001")]),
        ("$ .venv/bin/pallet-dev status --json | jq .endpoint", [("status", "--json")]),
        ("PALLET_DEV_NAME=demo pallet-dev up && pallet-dev health", [("up",), ("health",)]),
        ("curl -s $(pallet-dev status --json) 2>&1  # note", [("status", "--json")]),
        ("python -m pallet_dev down --clean", [("down", "--clean")]),
        ("docker rm -f pallet-dev-registry", []),
        ("cat pallet-dev.yaml", []),
        ("pallet-dev up --port <port>", [("up", "--port", PLACEHOLDER)]),
    ],
)
def test_extraction(line: str, expected: list[tuple[str, ...]]) -> None:
    assert invocations_in_shell(line) == expected


def test_extraction_from_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.REPO_ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `pallet-dev up --dry-run` first.\n"
        "```bash\n"
        "pallet-dev up \\\n"
        "  --port 5001\n"
        "```\n"
        "```yaml\n"
        "name: pallet-dev\n"
        "```\n"
        "```console\n"
        "$ pallet-dev health\n"
        "pallet-dev down is printed output here\n"
        "```\n"
    )
    found = [(inv.where, inv.args) for inv in extract_invocations(doc)]
    assert found == [
        ("doc.md:1", ("up", "--dry-run")),
        ("doc.md:3", ("up", "--port", "5001")),
        ("doc.md:10", ("health",)),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("up", "--bogus"),
        ("nope",),
        ("down", "--kind"),
        ("up", "--port", "abc"),
        ("up", "--backend", "kubernetes"),
        ("status", "extra"),
        ("--bogus", "up"),
        ("--verbose",),
        ("down", "--json=yes"),
    ],
)
def test_checker_rejects_what_the_cli_rejects(args: tuple[str, ...]) -> None:
    assert parse_error(args) is not None


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--version",),
        ("-v", "--config", "<file>", "up", "--prefer-docker", "--port", PLACEHOLDER),
        ("up", "--backend", "kind", "-f", "my-values.yaml", "--set", "KEY=VALUE"),
        ("up", "--port", "PORT", "--timeout=<seconds>"),
        ("doctor", "--backend", PLACEHOLDER, "--json"),
        ("health", "--help"),
    ],
)
def test_checker_accepts_what_the_cli_accepts(args: tuple[str, ...]) -> None:
    assert parse_error(args) is None


# --- the docs ---------------------------------------------------------------------------


def test_docs_show_pallet_dev_commands() -> None:
    assert len(ALL_INVOCATIONS) >= 20, "the extractor found almost nothing: is it broken?"
    readme = {
        inv.args[0] for inv in ALL_INVOCATIONS if inv.args and inv.where.startswith("README.md:")
    }
    assert {"up", "down", "health", "status", "doctor"} <= readme


@pytest.mark.parametrize("invocation", ALL_INVOCATIONS, ids=str)
def test_every_documented_invocation_parses(invocation: Invocation) -> None:
    error = parse_error(invocation.args)
    assert error is None, f"{invocation}\n  does not parse: {error}"


def test_readme_documents_every_command_and_option() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    root = root_group()
    missing = [
        f"{name} {opt}"
        for name, command in root.commands.items()
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help" and f"{opt}" not in readme
    ]
    missing += [f"global {opt}" for p in root.params for opt in p.opts if opt not in readme]
    missing += [f"command {name}" for name in root.commands if f"pallet-dev {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"


def test_readme_quickstart_is_the_two_fixed_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(bash scripts/dev-setup\.sh.*?)```", readme, re.S)
    assert block is not None, "the quickstart code block is missing"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert re.match(r"^bash scripts/dev-setup\.sh\s+# \S", lines[0])
    assert re.match(r"^\.venv/bin/python -m pytest\s+# \S", lines[1])
    # .ci/run runs this exact line as "the README's test command"
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest" in ci


def test_readme_exit_codes_match_errors_module() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\|\s*`?(\d+)`?\s*\|", readme, re.M)}
    constants = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert constants <= documented, f"exit codes missing from README.md: {constants - documented}"
    assert documented <= constants, f"README.md lists unknown codes: {documented - constants}"


def test_readme_lists_every_config_environment_variable() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert [var for var in ENV_FIELDS if var not in readme] == []


def test_readme_config_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    example = next((block for block in blocks if block.startswith("name:")), None)
    assert example is not None, "README.md has no config example starting with `name:`"
    path = tmp_path / "pallet-dev.yaml"
    path.write_text(example, encoding="utf-8")
    config, _ = load_config(path, environ={})
    # the example shows the defaults
    assert config == Config()


def _code_text() -> str:
    parts = []
    for folder in ("src", "tests", ".ci", "scripts", "charts"):
        base = REPO_ROOT / folder
        if not base.exists():
            continue
        for path in base.rglob("*"):
            if path.is_file() and path.suffix in {"", ".py", ".sh", ".env", ".yaml", ".tpl"}:
                if path.resolve() == Path(__file__).resolve():
                    continue
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def test_every_environment_variable_in_the_docs_exists_in_the_code() -> None:
    code = _code_text()
    unknown = sorted(
        {
            f"{path.relative_to(REPO_ROOT)}: {var}"
            for path in DOC_FILES
            if path.is_file()
            for var in re.findall(r"\b(PALLET_DEV_[A-Z0-9_]+)", path.read_text(encoding="utf-8"))
            if var not in code
        }
    )
    assert not unknown, f"variables named in the docs but read nowhere: {unknown}"


def test_every_script_and_relative_link_in_the_docs_exists() -> None:
    missing = []
    for path in DOC_FILES:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for script in re.findall(r"(?<![\w/.-])((?:scripts|\.ci)/[\w./-]+\.(?:sh|env))", text):
            if not (REPO_ROOT / script).is_file():
                missing.append(f"{path.name}: {script}")
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"^[a-z]+:", link):
                continue  # http:, https:, mailto:
            if not (path.parent / link).exists():
                missing.append(f"{path.name}: {link}")
    assert not missing, f"the docs point at files that do not exist: {missing}"
