"""`mirrors:` in the configuration: one pull-through cache per upstream, the defaults, and
the CA files read once the file's folder is known."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from pallet_dev.config_base import ENV_VAR_PATTERN, Strict, probe_url, short_value, usable_path
from pallet_dev.errors import ConfigError

if TYPE_CHECKING:
    from pallet_dev.config import Config

# An upstream registry as image names spell it: a host name, optionally with a port.
UPSTREAM_PATTERN = (
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$"
)


class MirrorSettings(Strict):
    """One pull-through cache: pulls of ``<upstream>/...`` try it before the upstream."""

    upstream: str = Field(pattern=UPSTREAM_PATTERN, max_length=253)
    remote_url: str
    username_env: str | None = Field(default=None, pattern=ENV_VAR_PATTERN)
    password_env: str | None = Field(default=None, pattern=ENV_VAR_PATTERN)
    ca_file: str | None = Field(default=None, min_length=1)  # relative to the config's folder

    @field_validator("remote_url")
    @classmethod
    def _remote(cls, value: str) -> str:
        value = probe_url(value)
        if value.split("://", 1)[1].rstrip("/").count("/"):
            raise ValueError(
                "must be the registry's base URL without a path, such as "
                "https://registry-1.docker.io"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _both_credentials(self) -> MirrorSettings:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError(
                "give both username_env and password_env (the names of the variables that "
                "hold the upstream's credentials), or neither"
            )
        return self


def default_mirrors() -> list[MirrorSettings]:
    from pallet_dev.mirrors import DEFAULT_MIRRORS

    return [MirrorSettings(upstream=up, remote_url=url) for up, url in DEFAULT_MIRRORS]


def resolve_mirror_ca_files(
    config: Config, base: Path, origin: Mapping[tuple[str, ...], str]
) -> Config:
    """Each mirror's ca_file becomes an absolute path to a readable PEM file."""
    mirrors: list[MirrorSettings] = []
    for index, mirror in enumerate(config.mirrors):
        if mirror.ca_file is None:
            mirrors.append(mirror)
            continue
        where = origin.get(("mirrors", str(index), "ca_file")) or "config"
        ca_file = mirror.ca_file
        found = usable_path(lambda: base / Path(ca_file).expanduser(), lambda path: True)
        if isinstance(found, str):  # ~user of no user, a NUL byte: said, never a traceback
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: cannot use the CA file "
                f"{short_value(ca_file)} of mirror '{mirror.upstream}' ({found}).",
                hint="Give the path of the upstream's CA certificate (PEM), relative to "
                "pallet-dev.yaml.",
            )
        path = found
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: cannot read the CA file "
                f"{short_value(mirror.ca_file)} of mirror '{mirror.upstream}' "
                f"({exc.strerror or exc}).",
                hint="Give the path of the upstream's CA certificate (PEM), relative to "
                "pallet-dev.yaml.",
            ) from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(
                f"{where}: mirrors.{index}.ca_file: {path} holds no PEM certificate "
                "(-----BEGIN CERTIFICATE-----).",
                hint="Give the upstream's CA certificate in PEM form.",
            )
        mirrors.append(mirror.model_copy(update={"ca_file": str(path)}))
    return config.model_copy(update={"mirrors": mirrors})
