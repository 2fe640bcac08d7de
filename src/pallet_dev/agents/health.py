"""Is each deployed agent healthy: its replicas ready and its health path answering 2xx.

Docker backend: every replica's published URL, with the standard library (no
subprocess). kind backend: the Kubernetes API server, over HTTPS with httpx and the
private kubeconfig's client certificate: the Deployment's ready replicas, and the
health path through the API server's service proxy
(``/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/<path>``), so no port-forward
and no extra kind port mapping is needed. Every check runs in a daemon thread with a
hard deadline, like the registry probe: `health` is bounded whatever the endpoints do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pallet_dev.agents.spec import AgentEndpoint, ApiAccess
from pallet_dev.probe import ABANDON_AFTER, ANY_2XX, ProbeTarget, http_error, load_httpx, probe


@dataclass(frozen=True)
class AgentHealth:
    name: str
    backend: str
    url: str
    healthy: bool
    ready_replicas: int
    desired_replicas: int
    status_code: int | None
    latency_ms: float
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "url": self.url,
            "healthy": self.healthy,
            "ready_replicas": self.ready_replicas,
            "desired_replicas": self.desired_replicas,
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


def not_deployed(name: str, backend: str | None) -> AgentHealth:
    return AgentHealth(
        name, backend or "-", "", False, 0, 0, None, 0.0, "not deployed (run `pallet-dev up`)"
    )


def _docker_agent(endpoint: AgentEndpoint, timeout: float) -> AgentHealth:
    started = time.perf_counter()
    results = [probe(ProbeTarget(endpoint.name, url, ANY_2XX), timeout) for url in endpoint.urls]
    ready = sum(1 for result in results if result.healthy)
    first = results[0] if results else None
    error = next((r.error for r in results if r.error), None)
    return AgentHealth(
        endpoint.name,
        endpoint.backend,
        endpoint.urls[0] if endpoint.urls else "",
        bool(results) and ready == endpoint.desired,
        ready,
        endpoint.desired,
        first.status_code if first else None,
        round((time.perf_counter() - started) * 1000, 1),
        error,
    )


# `aws eks get-token` and the like take about a second; health's own timeout may be shorter
PLUGIN_TIMEOUT = 10.0


def api_client(api: ApiAccess, timeout: float) -> Any:
    """An httpx client that authenticates to the API server: the kind client certificate,
    or a shared cluster's client certificate or bearer token."""
    import ssl

    httpx = load_httpx()
    context = ssl.create_default_context(cafile=api.ca_file or None)
    if api.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if api.cert_file:
        context.load_cert_chain(api.cert_file, api.key_file)
    headers = {}
    if api.exec_argv:
        headers["Authorization"] = f"Bearer {plugin_token(api, timeout)}"
    elif api.token_file:
        with open(api.token_file, encoding="utf-8") as handle:
            headers["Authorization"] = f"Bearer {handle.read().strip()}"
    return httpx.Client(
        verify=context, timeout=httpx.Timeout(timeout), trust_env=False, headers=headers
    )


def plugin_token(api: ApiAccess, timeout: float) -> str:
    """A fresh token from the kubeconfig's `exec` credential plugin (through the runner);
    ValueError when it gives none."""
    from pallet_dev.errors import PalletError
    from pallet_dev.runner import Runner
    from pallet_dev.tools.kubeconfig import exec_credential

    try:
        result = Runner().run(
            list(api.exec_argv),
            env=dict(api.exec_env),
            timeout=max(timeout, PLUGIN_TIMEOUT),
            step="exec plugin",
        )
    except PalletError as exc:
        raise ValueError(f"its credential plugin failed: {exc.message}") from exc
    token = exec_credential(result.stdout)[0]
    if not token:
        raise ValueError(f"its credential plugin ({api.exec_argv[0]}) gave no token")
    return token


class _Deployments:
    """The agents' Deployments from one list call, made while their health paths are probed."""

    def __init__(self, client: Any, url: str, timeout: float) -> None:
        self.by_name: dict[str, dict[str, Any]] = {}
        self.error: str | None = "no answer from the API server yet"
        self._done = threading.Event()
        self._client, self._url, self._timeout = client, url, timeout
        threading.Thread(target=self._list, name="pallet-deployments", daemon=True).start()

    def _list(self) -> None:
        httpx = load_httpx()
        try:
            answer = self._client.get(self._url)
            if answer.status_code != 200:
                self.error = f"API server answered {answer.status_code} for its Deployment"
            else:
                items = answer.json().get("items") or []
                self.by_name = {
                    str((item.get("metadata") or {}).get("name", "")): item for item in items
                }
                self.error = None
        except httpx.HTTPError as exc:
            reason = http_error(exc, self._url, self._timeout).reason
            timed_out = isinstance(exc, httpx.TimeoutException)
            self.error = reason if timed_out else f"cannot reach the API server ({reason})"
        except (OSError, ValueError, AttributeError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._done.set()

    def of(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """The agent's Deployment, or why there is none."""
        self._done.wait(self._timeout + ABANDON_AFTER)
        if self.error is not None:
            return None, self.error
        found = self.by_name.get(name)
        return found, None if found is not None else "its Deployment does not exist"


def _kind_agent(
    endpoint: AgentEndpoint, client: Any, deployments: _Deployments, timeout: float
) -> AgentHealth:
    httpx = load_httpx()

    started = time.perf_counter()
    ready, desired, error = 0, endpoint.desired, None
    status_code: int | None = None
    url = endpoint.proxy_url or ""
    try:
        answer = client.get(url)
        status_code = answer.status_code
        if not 200 <= answer.status_code < 300:
            error = f"expected 2xx, got {answer.status_code}"
    except httpx.HTTPError as exc:
        reason = http_error(exc, url, timeout).reason
        timed_out = isinstance(exc, httpx.TimeoutException)
        error = reason if timed_out else f"cannot reach the API server ({reason})"
    except (OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    deployment, missing = deployments.of(endpoint.name)
    if deployment is not None:
        desired = int((deployment.get("spec") or {}).get("replicas") or 0)
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    error = missing or error  # the Deployment's story first, as it explains the probe's
    healthy = error is None and ready == desired and desired > 0
    if error is None and not healthy:
        error = f"{ready}/{desired} replicas ready"
    return AgentHealth(
        endpoint.name,
        endpoint.backend,
        url,
        healthy,
        ready,
        desired,
        status_code,
        round((time.perf_counter() - started) * 1000, 1),
        error,
    )


def check_agents(
    endpoints: Sequence[AgentEndpoint], api: ApiAccess | None, timeout: float
) -> list[AgentHealth]:
    """Every agent's health, in parallel, within ``timeout`` (+ a little) in all."""
    if not endpoints:
        return []
    client: Any = None
    if any(e.proxy_url for e in endpoints):
        if api is None:
            return [
                _failed(e, "no API server access recorded; run `pallet-dev up`") for e in endpoints
            ]
        try:
            client = api_client(api, timeout)
        except (OSError, ValueError) as exc:
            return [_failed(e, f"cannot load the cluster credentials ({exc})") for e in endpoints]
    results: list[AgentHealth | None] = [None] * len(endpoints)
    listed = next((e.deployment_url for e in endpoints if e.deployment_url), None)
    # one list of the namespace's Deployments for every agent (their URLs share the folder)
    deployments = (
        _Deployments(client, listed.rsplit("/", 1)[0], timeout)
        if client is not None and listed
        else None
    )

    def check(endpoint: AgentEndpoint) -> AgentHealth:
        if not endpoint.proxy_url:
            return _docker_agent(endpoint, timeout)
        if deployments is None:
            return _failed(endpoint, "no Deployment recorded; run `pallet-dev up`")
        return _kind_agent(endpoint, client, deployments, timeout)

    def work(index: int, endpoint: AgentEndpoint) -> None:
        try:
            results[index] = check(endpoint)
        except Exception as exc:  # a check never raises out of its thread
            results[index] = _failed(endpoint, f"{type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=work, args=(index, endpoint), daemon=True)
        for index, endpoint in enumerate(endpoints)
    ]
    for thread in threads:
        thread.start()
    # a docker agent probes its replicas one after the other
    longest = max(max(1, len(e.urls)) for e in endpoints) * timeout
    deadline = time.monotonic() + longest + ABANDON_AFTER
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if client is not None:
        try:
            client.close()
        except Exception:
            pass
    return [
        result if result is not None else _failed(endpoint, f"timed out after {timeout:g} s")
        for result, endpoint in zip(results, endpoints)
    ]


def _failed(endpoint: AgentEndpoint, error: str) -> AgentHealth:
    url = endpoint.proxy_url or (endpoint.urls[0] if endpoint.urls else "")
    return AgentHealth(
        endpoint.name, endpoint.backend, url, False, 0, endpoint.desired, None, 0.0, error
    )
