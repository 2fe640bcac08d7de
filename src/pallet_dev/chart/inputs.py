"""The pallet-registry chart as the kind backend deploys it: its inputs to one release.

Where the chart is (:func:`find_chart_dir`), the values pallet-dev computes from the
config and the user's values files (:func:`load_chart_inputs`), the Service's in-cluster
name (:func:`chart_fullname`), and whether the deployed release already runs exactly
that (:func:`release_unchanged`, through :mod:`pallet_dev.chart.release`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pallet_dev.chart.constants import CHART_NAME
from pallet_dev.chart.release import chart_fingerprint, description_for, same_release
from pallet_dev.errors import ConfigError

if TYPE_CHECKING:
    from pallet_dev.settings import Settings
    from pallet_dev.tools.helm import HelmRevision

RELEASE = "registry"
NAMESPACE = "pallet"
# the registry's own objects (the `helm test` pod has component=test)
RELEASE_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=registry"
CHART_DIR_ENV = "PALLET_DEV_CHART_DIR"


class ValuesOptions(Protocol):
    """The user's Helm values: files (config ``chart.values`` first) and ``--set``."""

    @property
    def values_files(self) -> Sequence[str]: ...

    @property
    def set_overrides(self) -> Sequence[str]: ...


def find_chart_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The pallet-registry chart folder.

    ``PALLET_DEV_CHART_DIR`` wins. Otherwise the chart shipped inside the package
    (``pallet_dev/charts/pallet-registry``, where a wheel would carry it as package
    data), then the repository checkout (``<repo>/charts/pallet-registry`` next to
    ``src/``, which an editable install finds).
    """
    environ = os.environ if environ is None else environ
    override = environ.get(CHART_DIR_ENV)
    if override:
        path = Path(override).expanduser()
        if (path / "Chart.yaml").is_file():
            return path.resolve()
        raise ConfigError(
            f"{CHART_DIR_ENV}={override}: there is no Chart.yaml in that folder.",
            hint=f"Point {CHART_DIR_ENV} at the chart folder (charts/{CHART_NAME} in a checkout).",
        )
    package = Path(__file__).resolve().parents[1]
    for candidate in (
        package / "charts" / CHART_NAME,
        package.parents[1] / "charts" / CHART_NAME,
    ):
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise ConfigError(
        f"Cannot find the {CHART_NAME} Helm chart next to the pallet-dev package.",
        hint=f"Set {CHART_DIR_ENV} to the chart folder (charts/{CHART_NAME} in a checkout).",
    )


@dataclass(frozen=True)
class ChartInputs:
    """What the kind backend needs from the chart and its computed values."""

    chart_dir: Path
    chart_version: str
    values: dict[str, Any]  # the complete computed values, passed as one values file
    image: str  # the registry image the pod runs (loaded into the node when present)
    node_port: int  # the Service's fixed nodePort (kind publishes it on the host port)
    service_host: str  # <service>.<namespace>.svc.cluster.local:<port>, for pods
    node_data_dir: str  # the hostPath inside the node holding registry data

    @cached_property
    def fingerprint(self) -> str:
        """Chart files + values: equal fingerprints mean `helm upgrade` would change nothing."""
        return chart_fingerprint(self.chart_dir, self.values)

    @property
    def description(self) -> str:
        return description_for(self.fingerprint)


def pallet_dev_values(config: Settings, mirror_digest: str = "") -> dict[str, Any]:
    """The layer pallet-dev adds between the chart's dev values and the user's values.

    Registry data goes to the hostPath volume the kind config bind-mounts from the
    host. The pod runs as the invoking user's uid/gid (not root), so what the
    registry writes into the host folder belongs to that user and `down --clean`
    can delete it; as root the chart's own ids stay. The user's ``--values`` files
    and ``--set`` still win over this layer.
    """
    layer: dict[str, Any] = {
        "persistence": {"enabled": True, "hostPath": {"enabled": True}},
        "image": image_values(config.registry.image),
    }
    uid = os.getuid() if hasattr(os, "getuid") else 0
    gid = os.getgid() if hasattr(os, "getgid") else 0
    if uid > 0 and gid > 0:
        layer["podSecurityContext"] = {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid}
    if config.mirrors:
        from pallet_dev.backends.kind_mirrors import chart_layer

        layer["mirrors"] = chart_layer(config, mirror_digest)
    return layer


def image_values(image: str) -> dict[str, str]:
    """`registry.image` as the chart's image.repository / tag (both backends run it).

    ``name``, ``name:tag``; a registry host with a port (``localhost:5001/registry``) is
    part of the name. A digest (``name:tag@sha256:...``) is not passed on: the kind
    backend copies the image into the nodes with `kind load`, which cannot load or match
    by digest (kind#2394), so a digest-pinned pod would pull instead. The tag is used.
    """
    name = image.partition("@")[0]
    repository, tag = name, "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
    return {"repository": repository, "tag": tag}


def chart_fullname(values: Mapping[str, Any], release: str = RELEASE) -> str:
    """The chart's `pallet-registry.fullname` helper, for the Service's DNS name."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:63].rstrip("-")
    name = str(values.get("nameOverride") or CHART_NAME)
    if name in release:
        return release[:63].rstrip("-")
    return f"{release}-{name}"[:63].rstrip("-")


def load_chart_inputs(
    config: Settings, options: ValuesOptions, chart_dir: Path, mirror_digest: str = ""
) -> ChartInputs:
    """Compute and validate the chart values (ConfigError before anything is created).

    Layers, lowest first: the chart's values.yaml and values-dev.yaml, pallet-dev's
    own layer (:func:`pallet_dev_values`), the user's ``--values`` files (config
    ``chart.values`` first), then ``--set`` overrides. Helm gets the complete
    result as one values file, so the deployed release's values can be compared
    with it.
    """
    import tempfile

    import yaml

    from pallet_dev.chart import loader as chart_values

    with tempfile.TemporaryDirectory(prefix="pallet-dev-values-") as tmp:
        layer = Path(tmp) / "pallet-dev-kind-backend.yaml"
        layer.write_text(yaml.safe_dump(pallet_dev_values(config, mirror_digest)), encoding="utf-8")
        loaded = chart_values.load_values(
            chart_dir,
            values_files=[layer, *(Path(path) for path in options.values_files)],
            set_overrides=options.set_overrides,
            include_dev=True,
        )
    if loaded.service.type != "NodePort":
        raise ConfigError(
            f"service.type is {loaded.service.type}, but the kind backend reaches the registry "
            "through its NodePort.",
            hint="Leave service.type at NodePort (remove the override).",
        )
    values = loaded.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        chart_meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
        chart_version = str(chart_meta["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"{chart_dir / 'Chart.yaml'}: cannot read the chart version ({exc}).")
    host_path = loaded.persistence.host_path
    service = chart_fullname(values)
    return ChartInputs(
        chart_dir=chart_dir,
        chart_version=chart_version,
        values=values,
        image=loaded.image_ref,
        node_port=loaded.service.node_port,
        service_host=f"{service}.{NAMESPACE}.svc.cluster.local:{loaded.service.port}",
        node_data_dir=host_path.path.rstrip("/") or "/",
    )


def release_unchanged(latest: HelmRevision | None, chart: ChartInputs) -> bool:
    """The deployed release already runs this chart with these values (chart.release)."""
    return same_release(latest, f"{CHART_NAME}-{chart.chart_version}", chart.description)
