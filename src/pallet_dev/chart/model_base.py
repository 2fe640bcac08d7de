"""What every model of the chart's values shares: the strict base and cross-field rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class RuleViolation(ValueError):
    """A rule across fields, reported against one field (relative to the model)."""

    def __init__(
        self,
        field: Sequence[str],
        problem: str,
        value: Any,
        allowed: str,
        *,
        because: Sequence[Sequence[str]] = (),
    ) -> None:
        super().__init__(f"{'.'.join(field)}: {problem}")
        self.field = tuple(field)
        # the fields whose values made the rule apply; the error names whichever source
        # (file:line or --set) set the reported field or one of these last
        self.because = tuple(tuple(path) for path in because)
        self.problem = problem
        self.value = value
        self.allowed = allowed


class StrictValues(BaseModel):
    # strict: no "30050" → 30050 coercion, so the model rejects what the JSON schema does.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, alias_generator=to_camel)
