"""Configuration: discovery, precedence, and one-sentence errors with file:line."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet_dev.config import (
    DEFAULT_REGISTRY_IMAGE,
    NAME_PATTERN,
    Config,
    find_config_file,
    load_config,
)
from pallet_dev.errors import ConfigError
from pallet_dev.settings import from_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pallet-dev.yaml"
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    config, path = load_config(cwd=tmp_path, environ={})
    assert path is None
    assert config.name == "pallet-dev" and config.backend == "auto"
    assert config.registry.port == 5000 and config.registry.bind_address == "127.0.0.1"
    assert config.registry.image == DEFAULT_REGISTRY_IMAGE
    assert re.fullmatch(r"registry:3\.\d+\.\d+", DEFAULT_REGISTRY_IMAGE)
    settings = from_config(config)  # the names every backend derives from it
    assert settings.container_name == "pallet-dev-registry"
    assert settings.volume_name == "pallet-dev-registry-data"
    assert settings.kube_context == "kind-pallet-dev"
    assert config.services == []


def test_file_is_found_in_a_parent_folder(tmp_path: Path) -> None:
    write(tmp_path, "name: team-a\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_config_file(nested) == tmp_path / "pallet-dev.yaml"
    config, path = load_config(cwd=nested, environ={})
    assert config.name == "team-a" and path == tmp_path / "pallet-dev.yaml"


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    write(tmp_path, "registry:\n  port: 5001\n  image: registry:3.1.2\nbackend: kind\n")
    config, _ = load_config(cwd=tmp_path, environ={})
    assert config.registry.port == 5001
    config, _ = load_config(cwd=tmp_path, environ={"PALLET_DEV_REGISTRY_PORT": "5002"})
    assert config.registry.port == 5002
    config, _ = load_config(
        cwd=tmp_path,
        environ={"PALLET_DEV_REGISTRY_PORT": "5002", "PALLET_DEV_BACKEND": "docker"},
        overrides={("registry", "port"): 5003},
    )
    assert config.registry.port == 5003 and config.backend == "docker"
    assert config.registry.image == "registry:3.1.2"


def test_services_are_parsed_with_default_expect_status(tmp_path: Path) -> None:
    write(
        tmp_path,
        "services:\n  - name: agent\n    url: http://127.0.0.1:8080/healthz\n"
        "  - name: other\n    url: https://x.example/ready\n    expect_status: 204\n",
    )
    config, _ = load_config(cwd=tmp_path, environ={})
    assert [(s.name, s.expect_status) for s in config.services] == [("agent", 200), ("other", 204)]


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ok\nregistry:\n  port: 5000\n  prot: 5001\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    assert str(caught.value).startswith(f"{path}:4: registry.prot: unknown key")
    assert caught.value.exit_code == 2


def test_wrong_type_names_line_path_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "registry:\n  port: lots\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}:2: registry.port: ")
    assert "'lots'" in message


@pytest.mark.parametrize("port", [0, 65536, -1, 70000])
def test_port_out_of_range(tmp_path: Path, port: int) -> None:
    write(tmp_path, f"registry:\n  port: {port}\n")
    with pytest.raises(ConfigError, match=r"registry\.port"):
        load_config(cwd=tmp_path, environ={})


def test_bad_port_from_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={"PALLET_DEV_REGISTRY_PORT": "abc"})
    assert str(caught.value).startswith("environment variable PALLET_DEV_REGISTRY_PORT: ")


def test_bad_port_from_flag_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={}, overrides={("registry", "port"): 0})
    assert str(caught.value).startswith("--port: registry.port: ")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ok\nregistry:\n  port: [5000\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    assert re.match(rf"{re.escape(str(path))}:\d+: invalid YAML", str(caught.value))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match=":1: the config file must be a mapping"):
        load_config(cwd=tmp_path, environ={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    write(tmp_path, "")
    config, _ = load_config(cwd=tmp_path, environ={})
    assert config == Config()


def test_missing_and_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path, environ={})  # a folder is not readable as a file


@pytest.mark.parametrize(
    "name",
    ["-rm", "--help", "a b", "a;rm -rf", "UPPER", "x" * 41, "", "a_b", "trailing-", "$(id)"],
)
def test_names_that_are_not_cluster_or_container_names(tmp_path: Path, name: str) -> None:
    write(tmp_path, f"name: {name!r}\n")
    with pytest.raises(ConfigError, match="name: must be 1-40 lower-case"):
        load_config(cwd=tmp_path, environ={})


def test_bind_address_must_be_an_ip(tmp_path: Path) -> None:
    write(tmp_path, "registry:\n  bind_address: localhost; rm\n")
    with pytest.raises(ConfigError, match="registry.bind_address: must be an IP address"):
        load_config(cwd=tmp_path, environ={})


def test_reserved_and_duplicate_service_names(tmp_path: Path) -> None:
    write(tmp_path, "services:\n  - {name: registry, url: 'http://a:1/'}\n")
    with pytest.raises(ConfigError, match="reserved"):
        load_config(cwd=tmp_path, environ={})
    write(
        tmp_path,
        "services:\n  - {name: a, url: 'http://a:1/'}\n  - {name: a, url: 'http://a:2/'}\n",
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(cwd=tmp_path, environ={})


def test_service_url_must_be_http(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  - name: a\n    url: ftp://x/\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    assert str(caught.value).startswith(f"{path}:3: services.0.url: must be an http")


# Property-based: the name rule is exactly "valid kind cluster name and container name".
VALID_NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(VALID_NAMES)
def test_every_accepted_name_is_safe_for_kind_and_docker(name: str) -> None:
    config = Config(name=name)
    assert re.fullmatch(r"[a-z0-9.-]+", config.name)  # kind's rule
    container = from_config(config).container_name
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", container)  # docker's rule
    assert not config.name.startswith("-") and len(config.name) <= 40


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, min_size=1, max_size=45))
def test_names_with_any_unsafe_character_are_rejected(name: str) -> None:
    ok = re.fullmatch(NAME_PATTERN, name) is not None
    try:
        Config(name=name)
    except ValueError:
        assert not ok
    else:
        assert ok and not set(name) & set(" ;$`|&<>'\"\\\t\n")


@settings(max_examples=100, deadline=None)
@given(st.integers())
def test_port_is_accepted_exactly_in_range(port: int) -> None:
    try:
        load_config(cwd=Path("/nonexistent"), environ={}, overrides={("registry", "port"): port})
    except ConfigError as exc:
        assert not 1 <= port <= 65535
        assert "registry.port" in str(exc)
    else:
        assert 1 <= port <= 65535
