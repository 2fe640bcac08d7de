"""The conformance report's reading: only the listed failures may happen, as often as listed."""

from __future__ import annotations

from pathlib import Path

from tests.support.conformance import KNOWN_FAILURES, parse_junit

PREFIX = "OCI Conformance Test/"


def junit(tmp_path: Path, cases: list[tuple[str, str]]) -> Path:
    body = "".join(f'<testcase name="{PREFIX}{n}" status="{s}"></testcase>' for n, s in cases)
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="x">{body}</testsuite></testsuites>')
    return path


def test_known_failures_pass_and_anything_else_is_unexpected(tmp_path: Path) -> None:
    known = "empty/referrers"
    assert KNOWN_FAILURES[known] == 1
    ok = parse_junit(junit(tmp_path, [("ping", "passed"), (known, "failure"), ("x", "skipped")]))
    assert (ok.passed, ok.failed, ok.skipped, ok.unexpected) == (1, 1, 1, [])
    assert ok.by_group == {"referrers": 1}

    bad = parse_junit(
        junit(
            tmp_path,
            [
                (known, "failure"),
                (known, "failure"),  # more often than listed
                ("sha256 blobs/post+put/blob-post-put", "failure"),  # not listed
                ("sha512/pull/blob-get", "error"),  # an error is never a known failure
            ],
        )
    )
    assert bad.failed == 4 and len(bad.unexpected) == 3
    assert any("(error)" in case for case in bad.unexpected)
