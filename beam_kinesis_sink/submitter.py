"""Submitter: PutRecords calls on a small thread pool, and their futures.

This is the only part that does I/O for records. It builds each request
body once per attempt, sends it, and hands back what came of it (an answer
or an exception) untouched: judging it is the classifier's job. All else
runs in the caller's thread, so Beam metrics (bound to the bundle's thread)
are always updated from the right thread.

Calls go through :class:`~beam_kinesis_sink.direct_put_records.DirectPutRecords`
(``codec="fast"``, the default): the same bytes on the wire and the same
answers as boto3's ``put_records``, without botocore's per-record walks of
its model. ``codec="boto3"`` is boto3's own ``put_records``.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Dict, List, NamedTuple, Optional

from beam_kinesis_sink.direct_put_records import DirectPutRecords
from beam_kinesis_sink.put_records_codec import entries_of
from beam_kinesis_sink.shard_buffers import Batch, Item

#: the request codec of writers that do not name one ("fast" or "boto3")
DEFAULT_CODEC = "fast"
CODECS = ("fast", "boto3")


class Completed(NamedTuple):
    """A finished call: the batch it carried, and its answer or exception."""

    batch: Batch
    response: Any
    error: Optional[BaseException]


class Submitter:
    def __init__(self, client: Any, max_in_flight: int, codec: Optional[str] = None) -> None:
        self.client = client
        codec = codec or DEFAULT_CODEC
        if codec not in CODECS:
            raise ValueError(f"request_codec must be one of {CODECS}, got {codec!r}")
        self.codec = codec
        self._direct = DirectPutRecords(client) if codec == "fast" else None
        self._futures: Dict[cf.Future, Batch] = {}
        #: a call completed since ``completed`` last looked (so without it,
        #: ``completed()`` is empty: a caller may look at this first)
        self.any_done = False
        self._pool = cf.ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="kinesis-put")

    def __len__(self) -> int:
        """Calls in flight."""
        return len(self._futures)

    def submit(self, batch: Batch, stream_args: Dict[str, str]) -> None:
        """Send ``batch`` to the stream ``stream_args`` names (StreamName or StreamARN)."""
        # The items themselves: the codec reads their data and keys (no copy per record).
        future = self._pool.submit(self._call, stream_args, batch.items)
        self._futures[future] = batch
        future.add_done_callback(self._on_done)

    def _on_done(self, _: cf.Future) -> None:
        # Set from a pool thread; read and cleared by the caller's thread. A
        # completion after the clear sets it again, so none is missed.
        self.any_done = True

    def _call(self, stream_args: Dict[str, str], records: List[Item]) -> Any:
        if self._direct is not None:
            return self._direct.put_kinesis_records(stream_args, records)
        return self.client.put_records(Records=entries_of(records), **stream_args)

    def completed(self, wait: Optional[float] = None) -> List[Completed]:
        """Calls that have finished. With ``wait``, block up to that many
        seconds for the first one; without, only look."""
        if not self._futures:
            return []
        if wait is None:
            if not self.any_done:
                return []  # the common case on each add: no scan of the futures
            self.any_done = False
            done = [f for f in self._futures if f.done()]
        else:
            done, _ = cf.wait(list(self._futures), timeout=wait, return_when=cf.FIRST_COMPLETED)
        return [self._result(future) for future in done]

    def _result(self, future: cf.Future) -> Completed:
        batch = self._futures.pop(future)
        try:
            return Completed(batch, future.result(), None)
        except Exception as exc:  # every failure of a call is an answer to classify
            return Completed(batch, None, exc)

    def abandon(self) -> List[Batch]:
        """Stop waiting for the calls in flight; returns their batches. The
        calls may still complete on the service (their results are ignored)."""
        batches = list(self._futures.values())
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        return batches

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
