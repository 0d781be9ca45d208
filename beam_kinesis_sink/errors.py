"""The sink's exceptions: a small, flat set that keeps the last error."""

from __future__ import annotations


class KinesisSinkError(Exception):
    """Base class of the sink's errors."""


class FatalStreamError(KinesisSinkError):
    """A stream-level error that can never succeed, raised when the user asked
    for ``on_fatal_error="fail"``. Credentials are redacted from the message."""

    def __init__(self, stream: str, error_code: str, error_message: str) -> None:
        self.stream = stream
        self.error_code = error_code
        self.error_message = error_message
        super().__init__(
            f"Kinesis stream {stream!r}: {error_code}: {error_message} "
            f"(on_fatal_error='fail'; use the default on_fatal_error='dead_letter' "
            f"to route such records to dead_letters instead)"
        )

