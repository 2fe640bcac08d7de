"""Where pallet-dev keeps data, state and logs.

Platform-appropriate user folders (XDG on Linux, ~/Library on macOS) through
platformdirs. ``PALLET_DEV_HOME`` puts all of them under one folder instead,
which tests and CI use to stay isolated from a developer's real environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP = "pallet-dev"


@dataclass(frozen=True)
class Paths:
    data_dir: Path  # registry data for the kind backend (bind-mounted into the node)
    state_dir: Path  # locks, generated kind configs
    log_dir: Path  # JSON-lines command logs

    def env_data_dir(self, env_name: str) -> Path:
        return self.data_dir / env_name

    def registry_data_dir(self, env_name: str) -> Path:
        return self.env_data_dir(env_name) / "registry"

    def lock_file(self, env_name: str) -> Path:
        return self.state_dir / f"{env_name}.lock"

    def kind_kubeconfig(self, env_name: str) -> Path:
        """The private kubeconfig `kind create cluster` writes for the environment's cluster."""
        return self.state_dir / f"{env_name}.kubeconfig"

    def log_file(self) -> Path:
        return self.log_dir / "pallet-dev.log"

    def docker_builder_memo(self) -> Path:
        """Whether this host's `docker build` has BuildKit, as last asked (Docker.legacy_builder);
        in a folder, so no environment's files can take its name."""
        return self.state_dir / "host" / "docker-builder.json"


def default_paths() -> Paths:
    home = os.environ.get("PALLET_DEV_HOME", "").strip()
    if home:  # empty means unset (documented)
        root = usable_home(home)
        return Paths(root / "data", root / "state", root / "logs")
    import platformdirs

    return Paths(
        Path(platformdirs.user_data_dir(APP, appauthor=False)),
        Path(platformdirs.user_state_dir(APP, appauthor=False)),
        Path(platformdirs.user_log_dir(APP, appauthor=False)),
    )


def usable_home(value: str) -> Path:
    """PALLET_DEV_HOME as an absolute folder pallet-dev can write, or ConfigError (exit 2).

    A relative value is taken from the current folder; the folder is created on first
    use, so it may be missing as long as its nearest existing parent is writable.
    """
    from pallet_dev.errors import ConfigError

    shown = value if len(value) <= 80 else value[:77] + "..."
    root = Path(value).expanduser().absolute()
    fix = "Point PALLET_DEV_HOME at a folder you can write, or unset it."
    if root.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise ConfigError(f"PALLET_DEV_HOME={shown}: {root} is on a virtual file system.", hint=fix)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"PALLET_DEV_HOME={shown}: {existing} is not a folder.", hint=fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"PALLET_DEV_HOME={shown}: {existing} is not writable.", hint=fix)
    return root
