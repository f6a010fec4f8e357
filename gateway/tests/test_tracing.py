"""One trace from the client's request through the gateway and customer-svc, the outbox and the bus,
to activity-svc writing its note."""

import pytest
from crm_common import tracing
from crm_common.events.tables import outbox
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from .conftest import login
from .test_dashboard import settings_for

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure("crm-test", processor=SimpleSpanProcessor(exporter))
    yield exporter
    tracing.disable()


async def test_a_create_and_the_note_it_causes_are_one_trace(spans, tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=("customer", "activity"))
    async with running(app) as gw:
        admin = await login(gw)
        created = await gw.post(
            "/api/v1/customers",
            json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
            headers={**admin, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        )
        assert created.status_code == 201, created.text

        def consumer_spans():
            return [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]

        async def note_handled():
            return [s for s in consumer_spans() if s.name == "activity handle crm.customer.created"]

        assert await eventually(note_handled), [s.name for s in spans.get_finished_spans()]

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    gateway = next(
        s for s in finished if s.name == "POST /api/v1/customers" and s.attributes["crm.service"] == "gateway"
    )
    service = next(
        s
        for s in finished
        if s.name == "POST /api/v1/customers" and s.attributes["crm.service"] == "customer"
    )
    (note,) = await note_handled()
    for span in (gateway, service, note):
        assert format(span.context.trace_id, "032x") == CLIENT_TRACE
    assert format(gateway.parent.span_id, "016x") == CLIENT_SPAN
    assert service.parent.span_id == gateway.context.span_id
    # The consumer's parent is the request that wrote the event, whatever ran in between.
    assert note.parent.span_id == service.context.span_id
    assert by_id[note.parent.span_id].attributes["http.response.status_code"] == 201


async def test_with_tracing_off_a_callers_traceparent_still_reaches_the_events(tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=("customer",))
    async with running(app) as gw:
        admin = await login(gw)
        created = await gw.post(
            "/api/v1/customers",
            json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
            headers={**admin, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        )
        assert created.status_code == 201
        db = app.state.services["customer"].state.runtime.db
        async with db.transaction(read_only=True) as session:
            (payload,) = (await session.execute(select(outbox.c.payload))).scalars()
    assert payload["traceparent"].split("-")[1] == CLIENT_TRACE
