"""Stream routes: what the writer keeps per stream it writes to.

Each stream has its own request arguments, shard locator (map and record
limit) and limits; its queues and rate limiters are keyed by
``(stream, shard_id)``. Routes are made on a stream's first record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.messages import describe
from beam_kinesis_sink.shard_locator import ShardLocator

#: a stream name (1..128 of a-z A-Z 0-9 _ . -), or a Kinesis stream ARN
_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_ARN = re.compile(r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[a-zA-Z0-9_.-]{1,128}")


#: what a stream must be, for messages
STREAM_FORMS = ("a stream name (1 to 128 of a-z, A-Z, 0-9, _ . -) or a stream ARN "
                "(arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")


def is_stream(value: object) -> bool:
    """``value`` is a stream name or a stream ARN."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value) or _ARN.fullmatch(value))


def stream_problem(stream: object) -> Optional[str]:
    """Why what a stream function returned is not a stream name or ARN (None: it is one)."""
    if not isinstance(stream, str):
        return f"the stream function returned {type(stream).__name__}, not a stream name or ARN (str)"
    if is_stream(stream):
        return None
    shown = stream if len(stream) <= 80 else stream[:80] + "..."
    return f"the stream function returned {shown!r}, which is not {STREAM_FORMS}"


@dataclass(frozen=True)
class StreamChoice:
    """A user's ``stream`` function: element → stream name or ARN. Never raises."""

    fn: Callable[[Any], Any]

    def __call__(self, element: Any) -> Tuple[Optional[str], Optional[str]]:
        """``(stream, None)``, or ``(None, why not)``."""
        try:
            stream = self.fn(element)
        except Exception as exc:
            return None, (f"the stream function failed: {describe(exc)}; make it return a stream name "
                          "or ARN for every element (or catch the case and return a stream for it)")
        problem = stream_problem(stream)
        return (None, problem) if problem else (stream, None)


class StreamRoute:
    """One stream: its arguments, locator and current limits."""

    __slots__ = ("name", "args", "locator", "limits", "_base", "_request_given", "_loads")

    def __init__(self, name: str, args: Dict[str, str], locator: ShardLocator, base: Limits,
                 read_record_limit: bool, request_bytes_given: bool) -> None:
        self.name = name
        self.args = args
        self.locator = locator
        self._base = base if read_record_limit else None
        self._request_given = request_bytes_given
        self.limits = base
        self._loads = 0

    def refresh(self) -> bool:
        """Reload the map (and the record limit) if due; whether the shards changed."""
        changed = self.locator.refresh()
        if self._base is not None and self.locator.loads != self._loads:
            self._loads = self.locator.loads
            self.limits = self._base.for_stream(self.locator.record_limit_bytes, self._request_given)
        return changed

    def shard_start(self, shard_id: str) -> Optional[int]:
        """The starting hash key of an open shard of the current map (None: unknown)."""
        shard_map = self.locator.shard_map
        if shard_map is None or shard_id not in shard_map:
            return None
        return shard_map.shard(shard_id).start


class StreamRoutes:
    """The routes of one writer, made on a stream's first record; each use
    refreshes the stream's map when due and reports a changed map."""

    def __init__(self, make: Callable[[str], StreamRoute],
                 on_change: Callable[[StreamRoute], None]) -> None:
        self._make = make
        self._on_change = on_change
        self._routes: Dict[str, StreamRoute] = {}

    def __getitem__(self, name: str) -> StreamRoute:
        """The route of a stream already in use, as it is (no refresh)."""
        return self._routes[name]

    def get(self, name: str) -> Optional[StreamRoute]:
        return self._routes.get(name)

    def fresh(self, name: str, now: Optional[float] = None) -> StreamRoute:
        """The stream's route, made if new, its map refreshed if due
        (``now``: the clock's time, when the caller has just read it)."""
        route = self._routes.get(name)
        if route is None:
            route = self._routes[name] = self._make(name)
        elif now is not None and now < route.locator.next_look:
            return route  # the common case on each add: not due
        if route.refresh():
            self._on_change(route)
        return route
