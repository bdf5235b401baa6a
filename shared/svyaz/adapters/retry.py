"""One retry helper: jittered exponential backoff around an operation that may fail
transiently (store contention, a broker that is briefly unavailable)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter: contending workers spread out instead of colliding again in step."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


def retrying(
    operation: Callable[[], T],
    retryable: tuple[type[BaseException], ...],
    backoff: Backoff = Backoff(),
    *,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation`` until it succeeds or ``backoff.attempts`` tries failed with a
    ``retryable`` error; the last error is raised."""
    for attempt in range(backoff.attempts):
        try:
            return operation()
        except retryable as exc:
            if attempt == backoff.attempts - 1:
                raise
            if on_retry is not None:
                on_retry(exc)
            sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")  # attempts >= 1
