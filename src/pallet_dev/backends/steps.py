"""`up` as one ordered list of steps, walked twice: by `--dry-run` and by `up`.

A backend describes its `up` as a tuple of :class:`Step` objects over a state object of
its own (what earlier steps found: does the cluster exist, which nodes, the release's
last revision). `plan_steps` asks each step for the commands it would run and runs
nothing; `run_steps` runs them in order, with neighbouring ``concurrent`` steps at once
(kind's style of ✓/✗ lines, reported in listed order). Adding a step to `up` (agents, a
cache) is adding one entry to the list.

Every step draws its subprocess timeouts from the state's one :class:`Deadline`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from pallet_dev.backends.base import PlanStep
from pallet_dev.errors import CommandFailed, CommandTimeout, OperationFailed, ReadinessTimeout
from pallet_dev.output import Steps


class Deadline:
    """The `--timeout` of one run: what is left of it, and each call's share of it."""

    def __init__(self, total: float, *, at: float | None = None) -> None:
        self.total = total
        self.at = time.monotonic() + total if at is None else at

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def cap(self, cap: float, doing: str) -> float:
        """The timeout for one call: min(time left, ``cap``); none left is a timeout."""
        remaining = self.remaining()
        if remaining <= 0:
            raise ReadinessTimeout(
                f"The {self.total:g} s deadline (--timeout) passed before {doing}.",
                hint="Retry with a larger --timeout.",
            )
        return min(remaining, cap)


@dataclass(frozen=True)
class StepWarning:
    """A step that did not work out but does not stop `up` (its line is ✗, `up` goes on)."""

    text: str


class RunState(Protocol):
    """What every backend's step state carries."""

    @property
    def deadline(self) -> Deadline: ...

    @property
    def ui(self) -> Steps: ...


S = TypeVar("S", bound=RunState)


@dataclass(frozen=True)
class Step(Generic[S]):
    """One step of `up`.

    ``plan`` gives the commands it would run (its dry-run lines) without running
    anything; ``run`` does it, reporting its own ✓ lines when it is sequential. Both
    take the run's state ``S``. A ``concurrent`` step runs at once
    with its concurrent neighbours: it is reported as one line named ``name``, stores
    what it found in its own typed field of the state, and returns a
    :class:`StepWarning` when it failed in a way that need not stop `up`.
    """

    name: str
    plan: Callable[[S], Sequence[PlanStep]]
    run: Callable[[S], StepWarning | None]
    concurrent: bool = False


@dataclass
class StepFailureNaming:
    """How a failed step's error is worded: its name, and what to do when nothing says."""

    fallback_hint: str
    names: list[str] = field(default_factory=list)

    def named(self, name: str, exc: BaseException) -> BaseException:
        """A failed step's error, saying which step failed and what to do."""
        if isinstance(exc, (CommandFailed, CommandTimeout)):
            error = OperationFailed(
                f"{name} failed: {exc.message}", hint=exc.hint or self.fallback_hint
            )
            error.__cause__ = exc
            return error
        if isinstance(exc, OperationFailed) and not exc.message.startswith(name):
            # already explained (e.g. a classified Helm error): add which step it was
            exc.message = f"{name} failed: {exc.message}"
            exc.args = (exc.message,)
        return exc

    @contextmanager
    def step(self, ui: Steps, name: str) -> Iterator[None]:
        """A ✓/✗ step whose failure names the step and says what to do."""
        with ui.step(name):
            try:
                yield
            except (CommandFailed, CommandTimeout) as exc:
                raise self.named(name, exc) from exc
            except OperationFailed as exc:
                raise self.named(name, exc)


def plan_steps(steps: Sequence[Step[S]], state: S) -> list[PlanStep]:
    """The dry-run: every step's commands, in order; runs nothing."""
    return [planned for step in steps for planned in step.plan(state)]


def run_steps(
    steps: Sequence[Step[S]], state: S, naming: StepFailureNaming, *, max_parallel: int
) -> None:
    """Run ``steps`` in order; neighbouring concurrent steps run at once."""
    index = 0
    while index < len(steps):
        if not steps[index].concurrent:
            steps[index].run(state)
            index += 1
            continue
        group = [steps[index]]
        while index + len(group) < len(steps) and steps[index + len(group)].concurrent:
            group.append(steps[index + len(group)])
        _run_at_once(group, state, naming, max_parallel)
        index += len(group)


def _run_at_once(
    group: Sequence[Step[S]], state: S, naming: StepFailureNaming, max_parallel: int
) -> None:
    """Run independent steps at once; report each as a ✓/✗ line, in the listed order.

    They touch different things, so their order does not matter, and running them
    together keeps a re-run of `up` fast. The first real failure in list order is
    raised, named like any other step; a :class:`StepWarning` only marks its line ✗.
    """

    from pallet_dev.runner import wait_in_threads

    def timed(step: Step[S]) -> Callable[[], tuple[StepWarning | None, float]]:
        def run() -> tuple[StepWarning | None, float]:
            started = time.monotonic()
            return step.run(state), time.monotonic() - started

        return run

    ui = state.ui
    futures = wait_in_threads(
        [timed(step) for step in group],
        workers=max(1, min(max_parallel, len(group))),
        name="pallet-dev",
        while_waiting=ui.running([step.name for step in group]),
    )
    failure: tuple[str, BaseException] | None = None
    for step, future in zip(group, futures):
        exc = future.exception()
        if exc is not None:
            ui.failed(step.name)
            failure = failure or (step.name, exc)
            continue
        warning, elapsed = future.result()
        if warning is not None:
            ui.failed(step.name)
            ui.warn(warning.text)
        else:
            ui.done(step.name, elapsed)
    if failure is not None:
        name, exc = failure
        named = naming.named(name, exc)
        if named is exc:
            raise exc
        raise named from exc
