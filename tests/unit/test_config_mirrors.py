"""The `mirrors:` section: defaults, turning it off, and one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet_dev.config import load_config
from pallet_dev.errors import ConfigError
from pallet_dev.settings import from_config

DEFAULTS = [
    ("docker.io", "https://registry-1.docker.io"),
    ("ghcr.io", "https://ghcr.io"),
    ("quay.io", "https://quay.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pallet-dev.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    return caught.value.message


def test_default_is_four_anonymous_caches(tmp_path: Path) -> None:
    config, _ = load_config(cwd=tmp_path, environ={})
    settings = from_config(config)
    assert [(m.upstream, m.remote_url) for m in settings.mirrors] == DEFAULTS
    assert all(m.username_env is None and m.ca_file is None for m in settings.mirrors)
    # also when the file leaves the key out
    write(tmp_path, "name: pdt-x\n")
    config, _ = load_config(cwd=tmp_path, environ={})
    assert [m.upstream for m in config.mirrors] == [up for up, _ in DEFAULTS]


def test_empty_list_turns_them_off(tmp_path: Path) -> None:
    write(tmp_path, "mirrors: []\n")
    config, _ = load_config(cwd=tmp_path, environ={})
    assert from_config(config).mirrors == ()


def test_entries_with_credentials_and_a_relative_ca_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    ca = tmp_path / "certs" / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
    write(
        tmp_path,
        "mirrors:\n"
        "  - upstream: docker.io\n"
        "    remote_url: https://registry-1.docker.io/\n"
        "    username_env: HUB_USER\n"
        "    password_env: HUB_TOKEN\n"
        "  - upstream: registry.corp:8443\n"
        "    remote_url: https://registry.corp:8443\n"
        "    ca_file: certs/ca.pem\n",
    )
    config, _ = load_config(cwd=tmp_path / "certs", environ={})
    hub, corp = from_config(config).mirrors
    assert hub.remote_url == "https://registry-1.docker.io"  # trailing slash dropped
    assert (hub.username_env, hub.password_env) == ("HUB_USER", "HUB_TOKEN")
    assert corp.ca_file == str(ca.resolve())  # relative to the config file's folder


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "  - upstream: docker.io\n    remote_url: https://r.io\n    mirror: x\n",
            "pallet-dev.yaml:4: mirrors.0.mirror: unknown key",
        ),
        (
            "  - upstream: docker.io\n    remote_url: ftp://r.io\n",
            "pallet-dev.yaml:3: mirrors.0.remote_url: must be an http:// or https:// URL",
        ),
        (
            "  - upstream: docker.io\n    remote_url: https://r.io/v2\n",
            "mirrors.0.remote_url: must be the registry's base URL without a path",
        ),
        (
            "  - upstream: Docker.IO/library\n    remote_url: https://r.io\n",
            "pallet-dev.yaml:2: mirrors.0.upstream: String should match pattern",
        ),
        (
            "  - upstream: docker.io\n    remote_url: https://r.io\n    username_env: U\n",
            "mirrors.0: give both username_env and password_env",
        ),
        (
            "  - upstream: docker.io\n    remote_url: https://r.io\n"
            "    username_env: HUB-USER\n    password_env: P\n",
            "pallet-dev.yaml:4: mirrors.0.username_env: String should match pattern",
        ),
        (
            "  - remote_url: https://r.io\n",
            "mirrors.0.upstream: Field required",
        ),
        (
            "  - upstream: quay.io\n    remote_url: https://quay.io\n"
            "  - upstream: quay.io\n    remote_url: https://quay.example\n",
            "pallet-dev.yaml:1: mirrors: each upstream has one mirror; repeated: quay.io",
        ),
    ],
)
def test_bad_entries_say_where_and_how_to_fix(tmp_path: Path, entry: str, expected: str) -> None:
    message = error_of(tmp_path, "mirrors:\n" + entry)
    assert expected in message, message


def test_mirrors_must_be_a_list(tmp_path: Path) -> None:
    message = error_of(tmp_path, "mirrors:\n  docker.io: https://r.io\n")
    assert "pallet-dev.yaml:1: mirrors: must be a valid list" in message, message


def test_missing_or_non_pem_ca_file(tmp_path: Path) -> None:
    entry = "mirrors:\n  - upstream: a.test\n    remote_url: https://a.test\n    ca_file: ca.pem\n"
    message = error_of(tmp_path, entry)
    assert message.startswith(
        f"{tmp_path / 'pallet-dev.yaml'}:4: mirrors.0.ca_file: cannot read the CA file 'ca.pem'"
    ), message
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    message = error_of(tmp_path, entry)
    assert "holds no PEM certificate" in message, message
