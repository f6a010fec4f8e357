"""Traces with OpenTelemetry: gateway -> service -> outbox -> bus -> consumer, as one trace.

Off by default: no spans are recorded and nothing is exported, but a W3C `traceparent` that comes
in with a request is still carried on (to the services it calls and on the events it causes), so a
caller's own tracing sees through us. `CRM_OTLP_ENDPOINT` (an OTLP/HTTP collector, e.g.
http://otel-collector:4318) turns recording and export on for the process (`crm up`, `crm serve`).

Where a trace goes: every HTTP request is a SERVER span (parent: the incoming `traceparent`); the
gateway's calls to a service carry the current span as `traceparent`; an event written during a
request carries it as the CloudEvent extension `traceparent`; a consumer handles the event in a
CONSUMER span whose parent is that `traceparent`, whichever bus delivered it.
"""

from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

_tracer: trace.Tracer = trace.NoOpTracer()


def configure(
    service_name: str, *, endpoint: str | None = None, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """Record spans in this process: exported over OTLP/HTTP to `endpoint`, or handed to `processor`
    (tests). Neither: tracing stays off."""
    global _tracer
    if endpoint is None and processor is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
        )
    if processor is not None:
        provider.add_span_processor(processor)
    _tracer = provider.get_tracer("crm")
    return provider


def disable() -> None:
    global _tracer
    _tracer = trace.NoOpTracer()


def _headers_dict(scope_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in scope_headers
        if k in (b"traceparent", b"tracestate")
    }


@contextmanager
def server_span(scope: MutableMapping[str, Any], service: str) -> Iterator[trace.Span]:
    """The span of one HTTP request: a child of the span already current when the request is served in
    process (the embedded gateway calling a service), else of the caller's `traceparent`."""
    in_process = trace.get_current_span().get_span_context().is_valid
    carried = _headers_dict(scope.get("headers", ())) if not in_process else {}
    if not in_process and not carried and isinstance(_tracer, trace.NoOpTracer):
        # Off, and nothing to carry on: the span would be an invalid one anyway; skip making it.
        yield trace.INVALID_SPAN
        return
    parent = None if in_process else propagate.extract(carried)
    name = f"{scope.get('method', '')} {scope.get('path', '')}"
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes={"crm.service": service}
    ) as span:
        yield span


def mark_response(span: trace.Span, scope: MutableMapping[str, Any], status: int) -> None:
    path = getattr(scope.get("route"), "path", None)
    if path:
        span.update_name(f"{scope.get('method', '')} {path}")
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def outgoing_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, for a call to another service."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    return outgoing_headers().get("traceparent")


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextmanager
def consumer_span(consumer: str, event_type: str, event_id: str, traceparent: str | None) -> Iterator[None]:
    """A consumer handling one event, in the trace of the request that caused it."""
    parent = propagate.extract({"traceparent": traceparent} if traceparent else {})
    with _tracer.start_as_current_span(
        f"{consumer} handle {event_type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"crm.service": consumer, "messaging.message.id": event_id},
    ):
        yield
