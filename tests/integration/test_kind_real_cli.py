"""The kind adapter against the REAL kind CLI (no cluster is created).

* The kind config pallet-dev generates goes through kind's own loader and validator:
  `kind create cluster --config` with a node image that cannot exist fails only
  after both (at "Ensuring node image"); a broken config fails before, which the
  negative controls show.
* `kind version` (text only) and `kind get clusters` / `get nodes` are parsed from
  kind's real output, including "no clusters" (to stderr, exit 0) and names that are
  substrings of others.
* Files written into a node with `docker exec` round-trip through a real container.

Needs kind (and Docker for the last two groups). Skips without them; fails instead
with PALLET_DEV_REQUIRE_REAL=1.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet_dev import versions
from pallet_dev.backends.base import UpOptions
from pallet_dev.backends.kind import KindBackend
from pallet_dev.backends.registry_wiring import hosts_toml, hosts_toml_path
from pallet_dev.config import Config, KindSettings, RegistrySettings
from pallet_dev.settings import from_config
from pallet_dev.paths import Paths
from pallet_dev.runner import Runner
from pallet_dev.tools.kind import Kind, KindClusterConfig, NodeFiles, parse_names
from tests.conftest import require_tool, skip_or_fail
from tests.support.http_servers import free_port

pytestmark = [pytest.mark.kind, pytest.mark.docker]

# a registry name that never resolves (.invalid is reserved): the pull fails fast
BOGUS_NODE_IMAGE = "pallet-dev.invalid/no-such-node:v0@sha256:" + "0" * 64


@pytest.fixture(scope="module")
def kind_bin() -> str:
    return require_tool("kind", env_var="KIND")


@pytest.fixture(scope="module")
def docker_bin() -> str:
    docker = require_tool("docker")
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        skip_or_fail("the Docker daemon does not answer")
    return docker


def _runner_for(kind_bin: str) -> Runner:
    # the adapter calls `kind`: put the chosen binary first on PATH
    folder = str(Path(kind_bin).parent)
    return Runner(env={"PATH": folder + os.pathsep + os.environ.get("PATH", "")})


def _create(
    kind_bin: str, name: str, config: Path, kubeconfig: Path
) -> subprocess.CompletedProcess[str]:
    argv = Kind(Runner(), binary=kind_bin).create_cluster_argv(name, str(config), str(kubeconfig))
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_generated_config_passes_kinds_loader_and_validation(
    kind_bin: str, docker_bin: str, tmp_path: Path
) -> None:
    name = f"pdtest-{secrets.token_hex(4)}"
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "logs")
    config = Config(
        name=name,
        registry=RegistrySettings(port=free_port()),
        kind=KindSettings(node_image=BOGUS_NODE_IMAGE),
    )
    backend = KindBackend(from_config(config), Runner(), paths)
    plan = backend.plan_up(UpOptions())
    chart = backend.chart_inputs(UpOptions())
    kind_config = backend.kind_cluster_config(chart)
    assert plan.kind_config == kind_config.to_dict()
    config_file = tmp_path / "kind-config.yaml"
    config_file.write_text(kind_config.to_yaml())
    kubeconfig = tmp_path / "kubeconfig"
    try:
        result = _create(kind_bin, name, config_file, kubeconfig)
    finally:
        subprocess.run([kind_bin, "delete", "cluster", "--name", name, "--kubeconfig",
                        str(kubeconfig)], capture_output=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    # loaded (strict decoding: unknown keys fail), validated, then stopped at the image
    assert "Ensuring node image" in result.stderr, result.stderr
    assert "failed to pull image" in result.stderr, result.stderr
    for config_error in ("unable to decode config", "invalid configuration", "unknown apiVersion"):
        assert config_error not in result.stderr
    assert not kubeconfig.exists()
    assert name not in Kind(_runner_for(kind_bin)).get_clusters()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"host_port": 70000}, "invalid hostPort"),
        ({"name": "Not_Valid"}, "not a valid cluster name"),
    ],
)
def test_the_same_loader_rejects_a_broken_config(
    kind_bin: str, docker_bin: str, tmp_path: Path, change: dict[str, object], error: str
) -> None:
    fields: dict[str, object] = {
        "name": f"pdtest-{secrets.token_hex(4)}",
        "node_image": BOGUS_NODE_IMAGE,
        "node_port": 30050,
        "host_port": free_port(),
        "listen_address": "127.0.0.1",
        "host_data_dir": str(tmp_path),
        "node_data_dir": "/var/lib/pallet-registry",
        **change,
    }
    config_file = tmp_path / "kind-config.yaml"
    config_file.write_text(KindClusterConfig(**fields).to_yaml())  # type: ignore[arg-type]
    result = _create(kind_bin, str(fields["name"]), config_file, tmp_path / "kubeconfig")
    assert result.returncode != 0 and error in result.stderr, result.stderr
    assert "Ensuring node image" not in result.stderr


def test_unknown_keys_are_rejected_by_kinds_strict_decoder(
    kind_bin: str, docker_bin: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "kind-config.yaml"
    config_file.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
        "  extraPortMapings: []\n"
    )
    result = _create(kind_bin, f"pdtest-{secrets.token_hex(4)}", config_file, tmp_path / "k")
    assert result.returncode != 0 and "unable to decode config" in result.stderr


def test_version_is_read_from_kinds_text(kind_bin: str) -> None:
    raw = subprocess.run([kind_bin, "version"], capture_output=True, text=True, timeout=30)
    found = Kind(Runner(), binary=kind_bin).version()
    assert len(found) == 3 and f"kind {versions.show(found)} " in raw.stdout


def test_get_clusters_parses_the_real_output(kind_bin: str, docker_bin: str) -> None:
    raw = subprocess.run([kind_bin, "get", "clusters"], capture_output=True, text=True, timeout=30)
    assert raw.returncode == 0
    kind = Kind(_runner_for(kind_bin))
    names = kind.get_clusters()
    assert names == raw.stdout.split()
    if not names:
        assert "No kind clusters found." in raw.stderr
    missing = f"pdtest-{secrets.token_hex(4)}"
    assert not kind.cluster_exists(missing)
    assert kind.get_nodes(missing) == []  # "No kind nodes found ..." goes to stderr, exit 0


@pytest.fixture
def docker_listing(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A stand-in `docker` for kind: answers kind's `docker ps` with the names in a file."""
    folder = tmp_path / "docker-bin"
    folder.mkdir()
    names = tmp_path / "cluster-labels"
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = ps ]; then cat "{names}"; fi\n'  # the one call kind makes to list
        "exit 0\n"
    )
    script.chmod(0o755)
    yield folder, names


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("", []),
        ("sky\nskypilot\nsky\n", ["sky", "skypilot"]),  # kind de-duplicates node labels
        ("pallet-dev-2\n", ["pallet-dev-2"]),
    ],
)
def test_kinds_own_listing_output_is_parsed_exactly(
    kind_bin: str, docker_listing: tuple[Path, Path], labels: str, expected: list[str]
) -> None:
    folder, names = docker_listing
    names.write_text(labels)
    # the stand-in first: kind's folder or /usr/bin may hold a real docker
    search = [str(folder), str(Path(kind_bin).parent), "/usr/bin", "/bin"]
    runner = Runner(env={"PATH": os.pathsep.join(search)})
    raw = runner.run(["kind", "get", "clusters"])
    assert parse_names(raw.stdout) == expected
    if not expected:
        assert raw.stdout == "" and "No kind clusters found." in raw.stderr
    kind = Kind(runner)
    assert kind.cluster_exists("pallet-dev") is False
    assert kind.cluster_exists("sky") is ("sky" in expected)


@pytest.fixture
def shell_container(docker_bin: str, tmp_path: Path) -> Iterator[str]:
    """A running container with sh, mkdir, cat and mv, from the host's static busybox."""
    busybox = shutil.which("busybox")
    if (
        busybox is None
        or b"statically linked"
        not in subprocess.run(["file", "-L", busybox], capture_output=True).stdout
    ):
        skip_or_fail("a statically linked busybox (Debian: busybox-static) is needed")
    assert busybox is not None
    tag = f"pdtest-nodefiles-{secrets.token_hex(4)}"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "mkdir", "cat", "mv", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for folder in ("etc", "tmp"):
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
    subprocess.run(
        [docker_bin, "import", "-", f"{tag}:1"], input=archive.getvalue(), check=True,
        capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        subprocess.run(
            [docker_bin, "run", "-d", "--name", tag, f"{tag}:1", "/bin/sleep", "600"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield tag
    finally:
        subprocess.run([docker_bin, "rm", "-f", tag], capture_output=True, timeout=60)
        subprocess.run([docker_bin, "rmi", f"{tag}:1"], capture_output=True, timeout=60)


def test_hosts_toml_round_trips_through_a_real_container(shell_container: str) -> None:
    files = NodeFiles(Runner())
    path = hosts_toml_path(5001)  # a folder name with a colon, as containerd wants
    assert files.read(shell_container, path) is None
    content = hosts_toml(5001, shell_container, 30050)
    files.write(shell_container, path, content)
    assert files.read(shell_container, path) == content
    files.write(shell_container, path, "# replaced\n")
    assert files.read(shell_container, path) == "# replaced\n"
    listing = Runner().run(
        ["docker", "exec", shell_container, "sh", "-c", "cd /etc/containerd/certs.d/* && echo *"]
    )
    assert listing.stdout.split() == ["hosts.toml"]  # no temporary file left behind
