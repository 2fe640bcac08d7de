"""The one subprocess runner every external tool call goes through.

argv lists only (never a shell), the binary resolved on PATH with an install
hint when missing, the environment merged (never replaced), stdin closed, a
timeout on every call, each call logged, and a typed error that carries the
command, exit code and the tail of stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pallet_dev.errors import CommandFailed, CommandTimeout, Interrupted, ToolNotFound
from pallet_dev.eventlog import NULL_LOG, EventLog
from pallet_dev.interrupts import Held
from pallet_dev.versions import KIND_INSTALL

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")

INSTALL_HINTS: dict[str, str] = {
    "docker": "Install Docker (https://docs.docker.com/get-docker/) and start it.",
    "kind": f"Install kind: {KIND_INSTALL}",
    "helm": "Install Helm 3.x or 4.x: https://helm.sh/docs/intro/install/",
    "kubectl": "Install kubectl: https://kubernetes.io/docs/tasks/tools/",
}

DEFAULT_TIMEOUT = 60.0

# The tools running now, from any thread, so an interruption in the main thread can stop
# those that other threads wait on (concurrent steps) instead of waiting for their timeouts.
_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()
_refusing = threading.Event()


@contextmanager
def stopping_all_tools() -> Iterator[None]:
    """Stop every running tool and start no new one until the block ends.

    For the main thread on Ctrl-C or SIGTERM while other threads run tools: their calls
    end at once (as failed or interrupted), and the block waits for those threads. A tool
    another thread started just before (not yet in the set) is stopped as it appears.
    """
    _refusing.set()
    done = threading.Event()
    signalled: dict[subprocess.Popen[str], float] = {}

    def stop_each() -> None:
        # signals only: the threads that started the tools still wait on them and read
        # their output; TERM first, KILL 3 s later
        while True:
            with _running_lock:
                procs = list(_running)
            now = time.monotonic()
            for proc in procs:
                if proc.poll() is not None:
                    continue
                if proc not in signalled:
                    signalled[proc] = now
                    _signal_group(proc, signal.SIGTERM)
                elif now - signalled[proc] > 3.0:
                    _signal_group(proc, signal.SIGKILL)
            if done.wait(0.02):
                return

    stopper = threading.Thread(target=stop_each, name="pallet-dev-stop", daemon=True)
    stopper.start()
    try:
        yield
    finally:
        done.set()
        stopper.join()
        _refusing.clear()


def wait_in_threads(
    tasks: Sequence[Callable[[], T]],
    *,
    workers: int,
    name: str,
    while_waiting: AbstractContextManager[Any] | None = None,
) -> list[Future[T]]:
    """Run ``tasks`` in up to ``workers`` threads and wait for all (inside
    ``while_waiting``); their futures, in order. On Ctrl-C or SIGTERM in the calling
    thread, the tools the others run stop now, not when they end, and it is raised."""
    from concurrent.futures import ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(task) for task in tasks]
        with while_waiting or nullcontext():
            wait(futures)
    except BaseException:
        with stopping_all_tools():
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return futures


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner:
    """Runs external tools. Tests replace it with a fake at this seam."""

    def __init__(
        self,
        log: EventLog = NULL_LOG,
        *,
        env: Mapping[str, str] | None = None,
        engine_api: bool = False,
    ) -> None:
        self.log = log
        self.extra_env = dict(env or {})
        # the Docker Engine API's local socket for reads (tools/docker_engine.py): only
        # the application's runner asks it; fakes and other runners keep to the CLI
        self._engine: str | None = None
        self._engine_unknown = engine_api

    def which(self, tool: str) -> str:
        path = shutil.which(tool)
        if path is None:
            raise ToolNotFound(tool, hint=INSTALL_HINTS.get(tool))
        return path

    def has(self, tool: str) -> bool:
        return shutil.which(tool) is not None

    def engine_get(
        self, path: str, *, step: str, timeout: float = 10.0
    ) -> tuple[int, bytes] | None:
        """GET ``path`` from the Docker Engine API on the local socket the docker CLI would
        use: the status and body, logged like a tool call. None when there is no such
        socket or it failed (once failed, not asked again in this run): the caller then
        runs the docker CLI."""
        if _refusing.is_set():
            raise Interrupted()
        if self._engine_unknown:
            from pallet_dev.tools.docker_engine import local_socket

            self._engine = local_socket({**os.environ, **self.extra_env})
            self._engine_unknown = False
        if self._engine is None:
            return None
        from pallet_dev.tools.docker_engine import get

        started = time.monotonic()
        try:
            status, body = get(self._engine, path, timeout)
        except OSError as exc:
            self._engine = None
            self.log.write("api-failed", step=step, request=f"GET {path}", error=str(exc))
            return None
        duration = round(time.monotonic() - started, 4)
        self.log.write("api", step=step, request=f"GET {path}", status=status, duration_s=duration)
        return status, body

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        stream: bool = False,
        step: str = "",
        on_output: Callable[[str], None] | None = None,
        to_stdout: bool = False,
        on_start: Callable[[], None] | None = None,
    ) -> CommandResult:
        """Run ``argv``; raise CommandFailed on non-zero exit when ``check``.

        ``stream`` sends the tool's output to our stderr as it comes (progress of
        long pulls) instead of capturing it; ``to_stdout`` sends it to our stdout
        (`logs`). ``on_output`` captures stdout and stderr together and hands each
        line to the callback as it comes (live build output), the whole text ending
        up in the result's ``stdout``. ``on_start`` is called once the tool has started.
        """
        if not argv:
            raise ValueError("empty argv")
        argv = [str(arg) for arg in argv]
        if on_output is not None:
            with Held() as held:
                proc, started = self._spawn(
                    argv, env, step, subprocess.DEVNULL, subprocess.PIPE, subprocess.STDOUT
                )
                lines: list[str] = []
                reader = threading.Thread(target=_pump, args=(proc, lines, on_output), daemon=True)
                reader.start()
                with self._bounded(proc, argv, step, timeout):
                    held.release()
                    if on_start is not None:
                        on_start()
                    _wait_for_output_end(proc, reader, argv, timeout)
            reader.join(5)
            return self._finish(proc, started, argv, step, "".join(lines), "", check)
        with Held() as held:  # a signal while the tool starts is raised once it is watched
            proc, started = self._spawn(
                argv,
                env,
                step,
                subprocess.PIPE if input is not None else subprocess.DEVNULL,
                sys.stdout if to_stdout else sys.stderr if stream else subprocess.PIPE,
                sys.stderr if stream or to_stdout else subprocess.PIPE,
            )
            with self._bounded(proc, argv, step, timeout):
                held.release()
                if on_start is not None:
                    on_start()
                stdout, stderr = proc.communicate(input=input, timeout=timeout)
        return self._finish(proc, started, argv, step, stdout or "", stderr or "", check)

    def _spawn(
        self,
        argv: list[str],
        env: Mapping[str, str] | None,
        step: str,
        stdin: Any,
        stdout: Any,
        stderr: Any,
    ) -> tuple[subprocess.Popen[str], float]:
        """Start the tool (its own session) and log it; the process and its start time."""
        if _refusing.is_set():
            raise Interrupted()
        resolved = self.which(argv[0])
        merged = {**os.environ, **self.extra_env, **(env or {})}
        self.log.write("exec", step=step, argv=argv)
        try:
            proc = subprocess.Popen(
                [resolved, *argv[1:]],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=merged,
                text=True,
                errors="replace",
                # own process group: Ctrl-C reaches us once, and we stop the tool ourselves
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandFailed(argv, 127, "", str(exc)) from exc
        return proc, time.monotonic()

    @contextmanager
    def _bounded(
        self, proc: subprocess.Popen[str], argv: list[str], step: str, timeout: float
    ) -> Iterator[None]:
        """Stop the tool (TERM, then KILL) on timeout or Ctrl-C, and say so in the log."""
        with _running_lock:
            _running.add(proc)
        try:
            yield
        except subprocess.TimeoutExpired:
            with Held():  # a Ctrl-C now still stops the tool first
                _stop(proc)
            self.log.write("timeout", step=step, argv=argv, timeout=timeout)
            raise CommandTimeout(argv, timeout) from None
        except (KeyboardInterrupt, Interrupted):
            with Held():  # a second Ctrl-C does not leave the tool running
                _stop(proc)
            self.log.write("interrupted", step=step, argv=argv)
            raise
        finally:
            with _running_lock:
                _running.discard(proc)

    def _finish(
        self,
        proc: subprocess.Popen[str],
        started: float,
        argv: list[str],
        step: str,
        stdout: str,
        stderr: str,
        check: bool,
    ) -> CommandResult:
        duration = time.monotonic() - started
        result = CommandResult(tuple(argv), proc.returncode, stdout, stderr, round(duration, 4))
        self.log.write(
            "exit", step=step, argv=argv, exit_code=proc.returncode, duration_s=result.duration
        )
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, result.stdout, result.stderr)
        return result


def _wait_for_output_end(
    proc: subprocess.Popen[str], reader: threading.Thread, argv: list[str], timeout: float
) -> None:
    """Wait for a tool whose output ``reader`` reads: until its output ends (it exited),
    then for its exit status; TimeoutExpired after ``timeout``.

    Not ``proc.wait(timeout)``: with a timeout it polls, sleeping up to 50 ms between
    looks, so it noticed a build's end about 25 ms late on average. The reader's end is
    seen at once; a tool that exited while a child of its own still holds the output open
    is noticed at the next 50 ms look."""
    deadline = time.monotonic() + timeout
    while reader.is_alive() and proc.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(argv, timeout)
        reader.join(min(left, 0.05))
    proc.wait(timeout=max(0.0, deadline - time.monotonic()))


def _pump(proc: subprocess.Popen[str], lines: list[str], on_output: Callable[[str], None]) -> None:
    """Collect the tool's lines and hand each to ``on_output`` as it comes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        try:
            on_output(line.rstrip("\n"))
        except Exception:  # a display problem never stops the tool
            pass


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen[str]) -> None:
    """Terminate the tool's process group, then kill it if it does not go."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.communicate(timeout=1)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def run_lenient(runner: Runner, argv: Sequence[str], *, timeout: float, step: str) -> CommandResult:
    """Run a query whose failure is itself an answer (the tools' `version` calls in `doctor`).

    Never raises for the tool's own failure: a non-zero exit comes back as it is, and
    a hang or a binary that cannot start as exit 124 with the reason as its stderr.
    """
    try:
        return runner.run(argv, timeout=timeout, check=False, step=step)
    except (CommandTimeout, CommandFailed) as exc:
        return CommandResult(tuple(argv), 124, "", exc.message, timeout)


def last_line(text: str, limit: int = 300) -> str:
    """The last non-blank line of a tool's output, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
