"""The PutRecords codec: request bodies and answers as botocore writes and
reads them, without its per-record walks of the service model.

Pure functions, no I/O: :func:`encode_records` / :func:`encode_kinesis_records`
write the inside of a body's ``Records`` array byte for byte as botocore's
JSON serializer does, and :func:`decode_result_entries` reads an answer's
``Records`` as botocore's parser does.
:class:`~beam_kinesis_sink.direct_put_records.DirectPutRecords` sends them
through a boto3 client.
"""

from __future__ import annotations

import base64
import binascii
import json
from json.encoder import encode_basestring_ascii
from typing import Any, Dict, Iterable, List, Optional, Tuple

OPERATION = "PutRecords"
#: the members of a request entry, in the order the codec writes them
ENTRY_MEMBERS: Tuple[str, ...] = ("Data", "PartitionKey", "ExplicitHashKey")
#: the members of a result entry, in the model's order (botocore's parser's order)
RESULT_MEMBERS: Tuple[str, ...] = ("SequenceNumber", "ShardId", "ErrorCode", "ErrorMessage")
#: how botocore's JSON serializer starts the body of ``put_records(Records=[], ...)``
EMPTY_RECORDS = b'{"Records": []'
#: how a body with records starts: then the records, ``]`` and the stream arguments
RECORDS_OPEN = b'{"Records": ['

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
    return RECORDS_OPEN + encode_records(entries) + b"]" + rest


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
