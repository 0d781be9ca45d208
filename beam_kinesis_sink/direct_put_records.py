"""DirectPutRecords: boto3's ``put_records``, minus botocore's per-record
work and, after the first call, its per-call request building.

``DirectPutRecords(client).put(stream_args, entries)`` is a drop-in for
``client.put_records(Records=entries, **stream_args)``: same request bytes on
the wire, same answer dict, same exceptions. Profiles of a 500-record call
put most of boto3's CPU in two per-record walks of the service model:
serializing the request (one dict per entry, base64, ``json.dumps``) and,
larger still, parsing the answer (one ``_parse_shape`` per field of each
result entry). :mod:`~beam_kinesis_sink.put_records_codec` does those two
walks in a few tight lines; this module sends its bytes through the client.

The first call for a set of stream arguments goes through
``client.put_records`` itself, with ``Records=[]``; two handlers on the
client's own event system do the rest:

- ``before-call.kinesis.PutRecords`` splices the pre-built entries into the
  body botocore serialized (``{"Records": [], "StreamName": ...}``), before
  the request is created and signed; a last ``before-call`` handler keeps
  the request as botocore and every other handler left it (its endpoint
  URL, headers and request context) as a template.
- ``before-parse.kinesis.PutRecords`` reads a 2xx answer's ``Records`` list
  itself, as botocore's JSON parser would (the same members, ``null``
  fields dropped), and hands botocore the rest of the body to parse. Any
  answer it is not sure of (not JSON, not a dict, entries that are not
  objects...) is left untouched for botocore's parser.

The calls after it, for the same stream arguments, start from the template
(a new body, and copies of its headers and context) at the client's
``_endpoint.make_request``: the step ``put_records`` ends with. So they skip
only what ``put_records`` does before it, and would do the same way again
for the same arguments: the parameter events, the endpoint rules, the
serializer and the user agent (a third of the CPU left per 500-record call
on the fast loopback endpoint, 0.7 of 5 ms here). What comes after is
botocore's as before: signing (credentials fetched per request, so
refreshable and assumed-role credentials keep refreshing), ``before-send``
(the redactor's hook), the connection pool and timeouts, ``before-parse``,
the parser, and the ``after-call`` events. A status >= 300 raises the modelled
``ClientError`` subclass from ``client.exceptions`` as ``put_records`` does,
and a socket failure the connection error botocore maps it to.

So botocore keeps what it owns: endpoint resolution (the endpoint rules,
including StreamARN account endpoints, or the client's ``endpoint_url``),
the user agent, credentials, SigV4 signing, the connection pool, its retry
configuration (``ClientConfig`` makes one attempt), every event hook, error
parsing and the exception classes. Nothing here logs, and no credential is
read or kept by this module (a template holds no signature: it is taken
before signing).

When the fast path cannot be sure to be exact, ``put`` is plain
``client.put_records`` (``DirectPutRecords.fast`` is False, and ``reason``
says why): a client that is not botocore's (a test fake), a client with
botocore's parameter validation on (it would refuse ``Records=[]``; the
sink's clients have it off), or a service model whose PutRecords shapes,
protocol or traits are not the ones this module encodes. A request botocore
built in a shape this module does not know makes no template: those calls
keep going through ``put_records``.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any, Dict, List, Optional, Tuple

try:
    # botocore's per-call context: the user agent's feature ids ("m/...") are
    # gathered in it during a call, and the header rebuilt from it before signing.
    from botocore.context import get_context as _call_context
    from botocore.context import start_as_current_context as _in_call_context
except ImportError:  # pragma: no cover - a botocore before 1.35: no per-call features
    _call_context = _in_call_context = None

from beam_kinesis_sink.put_records_codec import (
    EMPTY_RECORDS,
    OPERATION,
    RECORDS_OPEN,
    RESULT_MEMBERS,
    decode_result_entries,
    encode_kinesis_records,
    encode_records,
    entries_of,
)

_UNIQUE = "beam_kinesis_sink.direct_put_records"


# ------------------------------------------------------------------ hooks
class _Pending:
    """One codec call in this thread: the entries to splice in, and what
    the hooks did with it."""

    __slots__ = ("records", "spliced", "fast_answer", "capture", "template")

    def __init__(self, records: bytes, capture: bool = False) -> None:
        self.records = records
        self.spliced = False
        self.fast_answer = False
        #: keep the request botocore builds, for the calls after (see _Template)
        self.capture = capture
        self.template: Optional[_Template] = None


_local = threading.local()


def _current() -> Optional[_Pending]:
    return getattr(_local, "pending", None)


def _splice_records(params: Dict[str, Any], **_: Any) -> None:
    """``before-call`` handler, before any other: put the pre-built entries into the request
    body of this thread's codec call (any other PutRecords call of the
    client is left alone). Returns None: a value would replace the call."""
    pending = _current()
    if pending is None or pending.spliced:
        return
    body = params.get("body")
    if not isinstance(body, bytes) or not body.startswith(EMPTY_RECORDS):
        raise RuntimeError("DirectPutRecords: botocore's PutRecords body does not start with "
                           "an empty Records list; not sending it")
    params["body"] = RECORDS_OPEN + pending.records + b"]" + body[len(EMPTY_RECORDS):]
    pending.spliced = True


def _take_template(params: Dict[str, Any], **_: Any) -> None:
    """``before-call`` handler, after every other: keep the request of this
    thread's first codec call as botocore and the other handlers left it."""
    pending = _current()
    if pending is not None and pending.capture and pending.spliced:
        pending.template = _Template.of(params, pending.records)


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


# ------------------------------------------------------------------ template
#: the members of the request dict botocore hands ``before-call`` for PutRecords
_REQUEST_MEMBERS = frozenset({"url_path", "query_string", "method", "headers", "body", "url", "context",
                              "auth_path"})


def _copied(value: Any) -> Any:
    """A request context's value, a dict copied (its own values shared)."""
    return dict(value) if type(value) is dict else value


class _Template:
    """A PutRecords request of one set of stream arguments as botocore built
    it on a first call, before signing: endpoint URL, headers, request
    context, and the body's end (the stream arguments)."""

    __slots__ = ("request", "headers", "context", "tail", "features")

    def __init__(self, params: Dict[str, Any], tail: bytes) -> None:
        self.request = {k: v for k, v in params.items() if k not in ("headers", "body", "context")}
        self.headers = dict(params["headers"])
        # The retry context is made anew by each call (a new invocation id);
        # the rest is copied a level deep now, before this first call's own
        # signing and sending can change it.
        self.context = {k: _copied(v) for k, v in params["context"].items() if k != "retries"}
        self.tail = tail
        #: botocore's call context so far (the features of the steps skipped,
        #: such as the endpoint rules'), for the user agent it rebuilds
        self.features = None if _call_context is None else copy.deepcopy(_call_context())

    @classmethod
    def of(cls, params: Dict[str, Any], records: bytes) -> Optional[_Template]:
        """The template of ``before-call``'s ``params``, whose body holds
        ``records`` (the codec's bytes); None for a request in a shape this
        module does not know."""
        context, headers, body = params.get("context"), params.get("headers"), params.get("body")
        start = RECORDS_OPEN + records + b"]"
        if (not set(params) <= _REQUEST_MEMBERS or params.get("method") != "POST"
                or not isinstance(params.get("url"), str) or type(context) is not dict
                or type(headers) is not dict or context.get("checksum")
                or not isinstance(body, bytes) or not body.startswith(start)):
            return None
        return cls(params, body[len(start):])

    def request_dict(self, records: bytes) -> Dict[str, Any]:
        """A new request of ``records`` (the codec's bytes), as
        ``Endpoint.make_request`` takes it: fresh headers and context (one
        level deep), so one call's changes never reach another's."""
        return {
            **self.request,
            "headers": dict(self.headers),
            "body": RECORDS_OPEN + records + b"]" + self.tail,
            "context": {k: _copied(v) for k, v in self.context.items()},
        }


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
    if operation.http_checksum or operation.http_checksum_required or operation.request_compression:
        return "PutRecords has a checksum or compression trait (this codec writes neither)"
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
    by the codec, and the request built by botocore once per set of stream
    arguments. Thread-safe, like the client. Calling the instance is the same
    as ``put``.

    Building one registers the two handlers on the client's events (once
    per client, however many codecs share it); they act only inside a
    ``put`` of this thread, so the client's other calls, ``put_records``
    included, are untouched. ``templates=False`` sends every call through
    ``put_records`` (the first call's way)."""

    def __init__(self, client: Any, templates: bool = True) -> None:
        self.client = client
        #: why the fast path is off (None: it is on)
        self.reason: Optional[str] = _unsupported(client)
        #: whether ``put`` takes the fast path (else it is plain ``put_records``)
        self.fast: bool = self.reason is None
        self._lock = threading.Lock()
        self._use_templates = templates
        self._templates: Dict[Tuple[Tuple[str, Any], ...], _Template] = {}
        #: calls that took the fast path; of them those whose answer this
        #: module read (the others: an error, or an answer left to botocore),
        #: and those sent from a template
        self.calls = 0
        self.fast_answers = 0
        self.templated_calls = 0
        if self.fast:
            model = client.meta.service_model
            self._service = model.service_id.hyphenize()
            self._operation = model.operation_model(OPERATION)
            events = client.meta.events
            # First: any other before-call handler sees the real body.
            events.register_first(f"before-call.{self._service}.{OPERATION}", _splice_records,
                                  unique_id=f"{_UNIQUE}.splice")
            # Last: the template is the request as every before-call handler left it.
            events.register_last(f"before-call.{self._service}.{OPERATION}", _take_template,
                                 unique_id=f"{_UNIQUE}.template")
            # Last: any other before-parse handler sees the real answer.
            events.register_last(f"before-parse.{self._service}.{OPERATION}", _read_records,
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
        key = tuple(stream_args.items())
        template = self._templates.get(key) if self._use_templates else None
        pending = _Pending(encoded, capture=self._use_templates and template is None)
        if template is not None:
            pending.spliced = True  # the template's body has the records already
        outer = _current()
        _local.pending = pending
        try:
            if template is None:
                answer = self.client.put_records(Records=[], **stream_args)
            else:
                answer = self._from_template(template, template.request_dict(encoded))
        finally:
            _local.pending = outer
            with self._lock:
                self.calls += 1
                self.fast_answers += pending.fast_answer
                self.templated_calls += template is not None
                if pending.template is not None:
                    self._templates.setdefault(key, pending.template)
        if not pending.spliced:  # another before-call handler answered instead of sending
            raise RuntimeError("DirectPutRecords: the call was answered without sending its records")
        return answer

    def _from_template(self, template: _Template, request_dict: Dict[str, Any]) -> Dict[str, Any]:
        """The end of botocore's ``_make_api_call`` for ``request_dict``, in
        a copy of the template's call context (as ``put_records`` runs in
        its own)."""
        if template.features is None or _in_call_context is None:
            return self._make_request(request_dict)
        with _in_call_context(template.features):
            return self._make_request(request_dict)

    def _make_request(self, request_dict: Dict[str, Any]) -> Dict[str, Any]:
        """The endpoint's request, the ``after-call`` events, and the modelled
        exception for a status >= 300, as ``put_records`` raises it."""
        client, operation, context = self.client, self._operation, request_dict["context"]
        try:
            http, parsed = client._endpoint.make_request(operation, request_dict)
        except Exception as exc:
            client.meta.events.emit(f"after-call-error.{self._service}.{OPERATION}", exception=exc,
                                    context=context)
            raise
        client.meta.events.emit(f"after-call.{self._service}.{OPERATION}", http_response=http,
                                parsed=parsed, model=operation, context=context)
        if http.status_code >= 300:
            error_info = parsed.get("Error", {})
            error_code = context.get("error_code_override") or error_info.get("Code")
            raise client.exceptions.from_code(error_code)(parsed, OPERATION)
        return parsed

    __call__ = put

    def __repr__(self) -> str:
        return f"DirectPutRecords(fast={self.fast}, reason={self.reason!r})"
