"""Which files of a build context count, and the content hash of an agent's build inputs.

The hash decides whether `up` builds at all: it covers the Dockerfile, the target,
the build args and every file Docker would send as the context (``.dockerignore``
applied with Docker's rules), so an unchanged agent is never rebuilt and any change
that could change the image gives a new tag. What it cannot see: a base image that
moved under the same tag (rebuild with `pallet-dev up --recreate` then).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

HASH_LENGTH = 16
# never part of a context's identity (Docker sends them unless ignored, but a VCS
# folder changes on every commit without changing what the image holds)
ALWAYS_IGNORED = (".git", ".hg", ".svn")


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a `!pattern` line: re-include what matches


def _translate(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as an anchored regex."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern.startswith("**", index):
                index += 2
                if pattern.startswith("/", index):
                    index += 1
                    out.append("(?:.*/)?")  # `**/` : any number of folders, or none
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end].replace("\\", "\\\\")
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("^" + "".join(out) + "$")


def _clean(line: str) -> str:
    """Docker's normalisation: trimmed, no leading '/', './' or trailing '/'."""
    text = os.path.normpath(line.strip()).replace(os.sep, "/")
    text = text.lstrip("/")
    return "" if text == "." else text


class DockerIgnore:
    """The rules of one .dockerignore: the last matching line wins; `!` re-includes."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            body = _clean(line[1:] if exclusion else line)
            if body:
                self.patterns.append(_Pattern(_translate(body), exclusion))

    @classmethod
    def from_context(cls, context: Path) -> DockerIgnore:
        try:
            text = (context / ".dockerignore").read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls([])
        return cls(text.splitlines())

    def excluded(self, relative: str) -> bool:
        """True when Docker leaves ``relative`` (a / separated path) out of the context.

        A pattern that matches a parent folder excludes everything below it, as in
        Docker's pattern matcher.
        """
        parts = relative.split("/")
        if parts[0] in ALWAYS_IGNORED:
            return True
        candidates = ["/".join(parts[: size + 1]) for size in range(len(parts))]
        result = False
        for pattern in self.patterns:
            if any(pattern.regex.match(candidate) for candidate in candidates):
                result = not pattern.exclusion
        return result


def context_files(context: Path, ignore: DockerIgnore | None = None) -> Iterator[str]:
    """Relative paths (sorted, / separated) of the files Docker sends for ``context``."""
    ignore = ignore or DockerIgnore.from_context(context)
    found: list[str] = []
    for root, dirs, files in os.walk(context):
        rel_root = os.path.relpath(root, context).replace(os.sep, "/")
        prefix = "" if rel_root == "." else rel_root + "/"
        # a folder is skipped only when nothing below it can be re-included
        reinclude = any(pattern.exclusion for pattern in ignore.patterns)
        dirs[:] = [d for d in dirs if reinclude or not ignore.excluded(prefix + d)]
        dirs.sort()
        for name in files:
            relative = prefix + name
            if not ignore.excluded(relative):
                found.append(relative)
    return iter(sorted(found))


def build_hash(
    context: Path,
    dockerfile: str,
    *,
    target: str | None = None,
    args: Mapping[str, str] | None = None,
) -> str:
    """The content hash of an agent's build inputs (hex, :data:`HASH_LENGTH` characters)."""
    digest = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            digest.update(part.encode() if isinstance(part, str) else part)
            digest.update(b"\0")

    add("pallet-dev build inputs v1", dockerfile, target or "")
    for name, value in sorted((args or {}).items()):
        add("arg", name, value)
    dockerfile_path = (context / dockerfile).resolve()
    add("dockerfile", dockerfile_path.read_bytes())
    for relative in context_files(context):
        path = context / relative
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            add("link", relative, os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            executable = "x" if info.st_mode & 0o111 else "-"
            add("file", relative, executable, path.read_bytes())
    return digest.hexdigest()[:HASH_LENGTH]
