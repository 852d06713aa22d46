"""Per-token request rates: a token bucket per token name (pure: the caller passes ``now``).

Rules:

1. A token with a ``rate`` (requests per second) has a bucket of ``burst``
   requests (default: one second's worth, at least 1), full at first, that
   refills continuously at ``rate`` up to ``burst``.
2. A request takes one unit.  With less than one in the bucket it is
   refused, the bucket unchanged, with the seconds until a unit is there
   (``Retry-After``): a refused request never costs a unit, so a client that
   waits as told is served.
3. Buckets are per node: a client spreading requests over n nodes gets up to
   n times the rate (the file says so).  Only the node a client reaches
   counts a request; a peer's relay of it is not counted again.
4. One bucket per token name, and names come from the tokens file: memory
   is bounded by the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    units: float
    at: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, name: str, rate: float, burst: float, now: float) -> float:
        """0.0 if ``name`` may make a request now (rule 2), else the seconds to wait."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(burst, now)
        elapsed = max(0.0, now - bucket.at)  # a clock that went back refills nothing
        bucket.units = min(burst, bucket.units + elapsed * rate)
        bucket.at = max(bucket.at, now)
        if bucket.units >= 1.0:
            bucket.units -= 1.0
            return 0.0
        return (1.0 - bucket.units) / rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(seconds)))
