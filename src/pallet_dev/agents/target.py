"""Where the agents' images go: a module of its own, so `up` can start building before
it loads the backends (commands.up.start_images_ahead)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pallet_dev.config_sources import registry_push_host

if TYPE_CHECKING:
    from pallet_dev.settings import Settings


@dataclass(frozen=True)
class ImageTarget:
    """Where the agents' images go: `docker push` to ``registry_host``, manifests read at
    ``registry_url``, repositories ``<folder>/<agent>``."""

    registry_url: str
    registry_host: str
    folder: str
    login: str | None = None  # base64 user:password when reading needs a login (a team's)


def own_image_target(config: Settings) -> ImageTarget:
    """Where the agents' images go on a backend that runs the environment's own registry
    (every one but a shared cluster): known from the config alone."""
    registry = config.registry
    return ImageTarget(
        config.registry_url, registry_push_host(registry.bind_address, registry.port), config.name
    )
