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

    def log_file(self) -> Path:
        return self.log_dir / "pallet-dev.log"


def default_paths() -> Paths:
    home = os.environ.get("PALLET_DEV_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "data", root / "state", root / "logs")
    import platformdirs

    return Paths(
        Path(platformdirs.user_data_dir(APP, appauthor=False)),
        Path(platformdirs.user_state_dir(APP, appauthor=False)),
        Path(platformdirs.user_log_dir(APP, appauthor=False)),
    )
