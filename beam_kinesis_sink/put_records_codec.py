"""DirectPutRecords: boto3's ``put_records``, minus botocore's per-record work.

``DirectPutRecords(client).put(stream_args, entries)`` is a drop-in for
``client.put_records(Records=entries, **stream_args)``: same request bytes on
the wire, same answer dict, same exceptions. Profiles of a 500-record call
put most of boto3's CPU in two per-record walks of the service model:
serializing the request (one dict per entry, base64, ``json.dumps``) and,
larger still, parsing the answer (one ``_parse_shape`` per field of each
result entry). This module does those two walks in a few tight lines and
leaves everything else to the client itself.

How: the call still goes through ``client.put_records``, but with
``Records=[]``; two handlers on the client's own event system do the rest.

- ``before-call.kinesis.PutRecords`` splices the pre-built entries into the
  body botocore serialized (``{"Records": [], "StreamName": ...}``), before
  the request is created and signed.
- ``before-parse.kinesis.PutRecords`` reads a 2xx answer's ``Records`` list
  itself, as botocore's JSON parser would (the same members, ``null``
  fields dropped), and hands botocore the rest of the body to parse. Any
  answer it is not sure of (not JSON, not a dict, entries that are not
  objects...) is left untouched for botocore's parser.

So botocore keeps what it owns: endpoint resolution (the endpoint rules,
including StreamARN account endpoints, or the client's ``endpoint_url``),
the user agent, credentials (fetched per request, so refreshable and
assumed-role credentials keep refreshing), SigV4 signing, the client's
connection pool and timeouts, its retry configuration (``ClientConfig``
makes one attempt), every other event hook (the redactor's ``before-send``
included), error parsing, and raising the modelled ``ClientError`` subclass
from ``client.exceptions`` for a status >= 300, or the connection error
botocore maps a socket failure to. Nothing here logs, and no credential is
read or kept by this module.

When the fast path cannot be sure to be exact, ``put`` is plain
``client.put_records`` (``DirectPutRecords.fast`` is False, and ``reason``
says why): a client that is not botocore's (a test fake), a client with
botocore's parameter validation on (it would refuse ``Records=[]``; the
sink's clients have it off), or a service model whose PutRecords shapes or
protocol are not the ones this module encodes.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from json.encoder import encode_basestring_ascii
from typing import Any, Dict, Iterable, List, Optional, Tuple

OPERATION = "PutRecords"
#: the members of a request entry, in the order the codec writes them
ENTRY_MEMBERS: Tuple[str, ...] = ("Data", "PartitionKey", "ExplicitHashKey")
#: the members of a result entry, in the model's order (botocore's parser's order)
RESULT_MEMBERS: Tuple[str, ...] = ("SequenceNumber", "ShardId", "ErrorCode", "ErrorMessage")
#: how botocore's JSON serializer starts the body of ``put_records(Records=[], ...)``
_EMPTY_RECORDS = b'{"Records": []'
_RECORDS_OPEN = b'{"Records": ['
_UNIQUE = "beam_kinesis_sink.put_records_codec"

_ENTRY_ORDER = list(ENTRY_MEMBERS)
_b2a = binascii.b2a_base64
_esc = encode_basestring_ascii
_SEQ, _SHARD = RESULT_MEMBERS[0], RESULT_MEMBERS[1]


# ------------------------------------------------------------------ request
def _generic_entry(entry: Any) -> str:
    """One entry as botocore's JSON serializer writes it (members in the
    entry's own order; an unknown member raises ``KeyError`` as botocore's
    does). Used for any entry the fast path does not take."""
    out: Dict[str, Any] = {}
    for key, value in entry.items():
        if key not in ENTRY_MEMBERS:
            raise KeyError(key)
        if key == "Data":
            if isinstance(value, str):
                value = value.encode("utf-8")
            value = base64.b64encode(value).strip().decode("utf-8")
        out[key] = value
    return json.dumps(out)


def encode_records(entries: Iterable[Any]) -> bytes:
    """The inside of the ``Records`` array of a PutRecords body, as
    botocore's JSON serializer writes it: ``{"Data": "<base64>",
    "PartitionKey": "...", "ExplicitHashKey": "..."}`` objects joined by
    ``", "``, ASCII only (``json.dumps``' escaping).

    Entries of exactly ``Data`` (bytes-like), a ``PartitionKey`` string and
    optionally an ``ExplicitHashKey`` string, in that order (the
    submitter's), take the fast path; any other entry is written the way
    botocore writes it (members in the entry's order), or raises what
    botocore's serializer raises. Either way the bytes are botocore's."""
    parts: List[bytes] = []
    append = parts.append
    for entry in entries:
        try:
            explicit = entry.get("ExplicitHashKey")
            if explicit is None:
                if len(entry) == 2 and next(iter(entry)) == "Data":
                    append(b'{"Data": "' + _b2a(entry["Data"], newline=False)
                           + b'", "PartitionKey": ' + _esc(entry["PartitionKey"]).encode("ascii") + b"}")
                    continue
            elif len(entry) == 3 and type(explicit) is str and list(entry) == _ENTRY_ORDER:
                append(b'{"Data": "' + _b2a(entry["Data"], newline=False)
                       + b'", "PartitionKey": ' + _esc(entry["PartitionKey"]).encode("ascii")
                       + b', "ExplicitHashKey": ' + _esc(explicit).encode("ascii") + b"}")
                continue
        except (AttributeError, KeyError, TypeError, ValueError):
            pass  # not the common shape: botocore's way below decides
        append(_generic_entry(entry).encode("ascii"))
    return b", ".join(parts)


def entries_of(records: Iterable[Any]) -> List[Dict[str, Any]]:
    """The ``Records`` entries of a PutRecords request for ``records``
    (anything with ``data``, ``partition_key`` and ``explicit_hash_key``:
    :class:`~beam_kinesis_sink.records.KinesisRecord`, or the writer's
    items), as ``put_records`` takes them."""
    entries = []
    for record in records:
        entry = {"Data": record.data, "PartitionKey": record.partition_key}
        if record.explicit_hash_key is not None:
            entry["ExplicitHashKey"] = record.explicit_hash_key
        entries.append(entry)
    return entries


def encode_kinesis_records(records: Iterable[Any]) -> bytes:
    """``encode_records(entries_of(records))``, without the entry dicts: the
    same bytes, for records (as ``entries_of`` takes them) of bytes data and
    str keys (the sink's, after ``convert``); any other record takes
    ``encode_records``' general way."""
    parts: List[bytes] = []
    append = parts.append
    for record in records:
        data, partition_key, explicit = record.data, record.partition_key, record.explicit_hash_key
        if type(data) is bytes and type(partition_key) is str:
            if explicit is None:
                append(b'{"Data": "' + _b2a(data, newline=False)
                       + b'", "PartitionKey": ' + _esc(partition_key).encode("ascii") + b"}")
                continue
            if type(explicit) is str:
                append(b'{"Data": "' + _b2a(data, newline=False)
                       + b'", "PartitionKey": ' + _esc(partition_key).encode("ascii")
                       + b', "ExplicitHashKey": ' + _esc(explicit).encode("ascii") + b"}")
                continue
        append(encode_records(entries_of([record])))
    return b", ".join(parts)


def request_body(stream_args: Dict[str, Any], entries: Iterable[Any]) -> bytes:
    """The whole body of ``put_records(Records=entries, **stream_args)`` as
    botocore writes it (a helper for tests and tools; ``put`` lets botocore
    write the stream arguments itself)."""
    rest = b", " + json.dumps(dict(stream_args))[1:].encode("ascii") if stream_args else b"}"
    return _RECORDS_OPEN + encode_records(entries) + b"]" + rest


# ------------------------------------------------------------------ answer
def decode_result_entries(raw: List[Any]) -> Optional[List[Optional[Dict[str, Any]]]]:
    """``Records`` of a parsed JSON answer, equal to what botocore's parser
    returns (``null`` members dropped, unknown ones ignored, ``null`` entries
    kept; members in model order, but for a plain receipt, kept as parsed);
    None if an entry is neither an object nor null
    (botocore's parser then decides, and fails its own way)."""
    out: List[Optional[Dict[str, Any]]] = []
    append = out.append
    for entry in raw:
        if type(entry) is not dict:
            if entry is None:
                append(None)
                continue
            return None
        sequence, shard = entry.get(_SEQ), entry.get(_SHARD)
        if len(entry) == 2 and sequence is not None and shard is not None:
            # The common receipt, kept as parsed: equal to the dict botocore
            # makes (its two members in the answer's order, not always the
            # model's), with no second dict per record.
            append(entry)
            continue
        parsed = {}
        for name in RESULT_MEMBERS:
            value = entry.get(name)
            if value is not None:
                parsed[name] = value
        append(parsed)
    return out


# ------------------------------------------------------------------ hooks
class _Pending:
    """One codec call in this thread: the entries to splice in, and what
    the hooks did with it."""

    __slots__ = ("records", "spliced", "fast_answer")

    def __init__(self, records: bytes) -> None:
        self.records = records
        self.spliced = False
        self.fast_answer = False


_local = threading.local()


def _current() -> Optional[_Pending]:
    return getattr(_local, "pending", None)


def _splice_records(params: Dict[str, Any], **_: Any) -> None:
    """``before-call`` handler: put the pre-built entries into the request
    body of this thread's codec call (any other PutRecords call of the
    client is left alone). Returns None: a value would replace the call."""
    pending = _current()
    if pending is None or pending.spliced:
        return
    body = params.get("body")
    if not isinstance(body, bytes) or not body.startswith(_EMPTY_RECORDS):
        raise RuntimeError("DirectPutRecords: botocore's PutRecords body does not start with "
                           "an empty Records list; not sending it")
    params["body"] = _RECORDS_OPEN + pending.records + b"]" + body[len(_EMPTY_RECORDS):]
    pending.spliced = True


def _read_records(response_dict: Dict[str, Any], customized_response_dict: Dict[str, Any],
                  **_: Any) -> None:
    """``before-parse`` handler: read the ``Records`` of a 2xx answer to this
    thread's codec call, and leave botocore the rest of the body to parse
    (it then puts ``Records: []`` where the model has it, which
    ``customized_response_dict`` replaces in place)."""
    pending = _current()
    if pending is None or not 200 <= response_dict.get("status_code", 0) < 300:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return
    try:
        answer = json.loads(body.decode("utf-8"))  # as botocore: UTF-8, then JSON
    except ValueError:
        return
    if type(answer) is not dict or type(answer.get("Records")) is not list:
        return
    records = decode_result_entries(answer["Records"])
    if records is None:
        return
    answer["Records"] = []
    response_dict["body"] = json.dumps(answer).encode("utf-8")
    customized_response_dict["Records"] = records
    pending.fast_answer = True


# ------------------------------------------------------------------ checks
def _shape_members(shape: Any) -> Dict[str, Tuple[str, str]]:
    """{member: (type name, wire name)} of a structure shape."""
    return {name: (member.type_name, member.serialization.get("name", name))
            for name, member in shape.members.items()}


def _validates(client: Any) -> bool:
    """Whether the client's serializer validates parameters (botocore keeps
    that choice only in the serializer it built; ``meta.config`` does not
    tell). Unknown counts as yes."""
    try:
        from botocore.validate import ParamValidationDecorator

        serializer = client._serializer
    except Exception:
        return True
    return isinstance(serializer, ParamValidationDecorator)


def _unsupported(client: Any) -> Optional[str]:
    """Why the fast path would not be exact for ``client``; None if it is."""
    try:
        meta = client.meta
        events = meta.events
        model = meta.service_model
        operation = model.operation_model(OPERATION)
    except Exception:
        return "not a botocore Kinesis client"
    if not all(callable(getattr(events, name, None)) for name in ("register_first", "register_last")):
        return "the client has no botocore event system"
    if model.service_name != "kinesis":
        return f"not a Kinesis client ({model.service_name})"
    if getattr(model, "resolved_protocol", model.metadata.get("protocol")) != "json":
        return "the client does not speak the JSON protocol"
    if _validates(client):
        return "botocore's parameter validation is on (it would refuse Records=[])"
    try:
        records = operation.input_shape.members["Records"]
        entry = _shape_members(records.member)
        result = _shape_members(operation.output_shape.members["Records"].member)
    except Exception:
        return "PutRecords' shapes are not the expected ones"
    expected_entry = {"Data": ("blob", "Data"), "PartitionKey": ("string", "PartitionKey"),
                      "ExplicitHashKey": ("string", "ExplicitHashKey")}
    expected_result = {name: ("string", name) for name in RESULT_MEMBERS}
    if (records.type_name != "list" or entry != expected_entry or tuple(result) != RESULT_MEMBERS
            or result != expected_result):
        return "PutRecords' shapes are not the expected ones"
    return None


# ------------------------------------------------------------------ the codec
class DirectPutRecords:
    """``put(stream_args, entries)``: ``client.put_records(Records=entries,
    **stream_args)``, with the entries encoded and the answer's receipts read
    by this module. Thread-safe, like the client. Calling the instance is
    the same as ``put``.

    Building one registers the two handlers on the client's events (once
    per client, however many codecs share it); they act only inside a
    ``put`` of this thread, so the client's other calls, ``put_records``
    included, are untouched."""

    def __init__(self, client: Any) -> None:
        self.client = client
        #: why the fast path is off (None: it is on)
        self.reason: Optional[str] = _unsupported(client)
        #: whether ``put`` takes the fast path (else it is plain ``put_records``)
        self.fast: bool = self.reason is None
        self._lock = threading.Lock()
        #: calls that took the fast path, and of them those whose answer
        #: this module read (the others: an error, or an answer left to botocore)
        self.calls = 0
        self.fast_answers = 0
        if self.fast:
            service = client.meta.service_model.service_id.hyphenize()
            events = client.meta.events
            # First: any other before-call handler sees the real body.
            events.register_first(f"before-call.{service}.{OPERATION}", _splice_records,
                                  unique_id=f"{_UNIQUE}.splice")
            # Last: any other before-parse handler sees the real answer.
            events.register_last(f"before-parse.{service}.{OPERATION}", _read_records,
                                 unique_id=f"{_UNIQUE}.read")

    def put(self, stream_args: Dict[str, Any], entries: List[Dict[str, Any]]) -> Dict[str, Any]:
        """One PutRecords call: the parsed answer, or what boto3 raises."""
        if not self.fast:
            return self.client.put_records(Records=entries, **stream_args)
        return self._send(stream_args, encode_records(entries))

    def put_kinesis_records(self, stream_args: Dict[str, Any], records: List[Any]) -> Dict[str, Any]:
        """``put(stream_args, entries_of(records))``, without building the
        entries (the sink's submitter calls this)."""
        if not self.fast:
            return self.client.put_records(Records=entries_of(records), **stream_args)
        return self._send(stream_args, encode_kinesis_records(records))

    def _send(self, stream_args: Dict[str, Any], encoded: bytes) -> Dict[str, Any]:
        pending = _Pending(encoded)
        outer = _current()
        _local.pending = pending
        try:
            answer = self.client.put_records(Records=[], **stream_args)
        finally:
            _local.pending = outer
            with self._lock:
                self.calls += 1
                self.fast_answers += pending.fast_answer
        if not pending.spliced:  # another before-call handler answered instead of sending
            raise RuntimeError("DirectPutRecords: the call was answered without sending its records")
        return answer

    __call__ = put

    def __repr__(self) -> str:
        return f"DirectPutRecords(fast={self.fast}, reason={self.reason!r})"
