"""A broker outage as an operator sees it: the service stays ready (degraded), writes keep working
through the outbox, and the events go out when the broker is back."""

from urllib.parse import urlparse

import pytest
from crm_common.events.tables import outbox
from crm_common.testing.plugin import eventually, running
from crm_common.testing.tcp_proxy import TcpProxy
from customer_svc.app import create_app
from customer_svc.settings import Settings
from sqlalchemy import select

pytestmark = pytest.mark.integration


async def test_readiness_is_degraded_not_failed_while_the_broker_is_away(
    postgres_url, pg_schema, amqp_url, events_namespace, signing_key, auth_headers, tmp_path
):
    broker = urlparse(amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    port = await proxy.start()
    settings = Settings(
        database_url=postgres_url,
        db_schema=pg_schema,
        amqp_url=f"amqp://{broker.username}:{broker.password}@127.0.0.1:{port}/",
        events_namespace=events_namespace,
        jwt_public_key=signing_key[1],
        data_dir=tmp_path,
        relay_poll_interval=0.1,
    )
    app = create_app(settings)
    try:
        async with running(app) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ok", "checks": {"database": True, "broker": True}}

            await proxy.cut()

            async def degraded():
                r = await client.get("/readyz")
                return r if r.json()["status"] == "degraded" else None

            during = await eventually(degraded, timeout=15)
            assert during is not None, "readiness never reported the broker outage"
            assert during.status_code == 200 and during.json()["checks"] == {
                "database": True,
                "broker": False,
            }
            assert (
                'crm_ready_check{check="broker",service="customer"} 0.0'
                in (await client.get("/metrics")).text
            )

            created = await client.post(
                "/api/v1/customers",
                json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
                headers=auth_headers("admin"),
            )
            assert created.status_code == 201, created.text
            db = app.state.runtime.db

            async def states() -> list[str]:
                async with db.transaction(read_only=True) as session:
                    return list((await session.execute(select(outbox.c.state))).scalars())

            assert await states() == ["PENDING"]

            await proxy.restore()

            async def recovered():
                r = await client.get("/readyz")
                return r.json()["status"] == "ok" and await states() == ["PUBLISHED"]

            assert await eventually(recovered, timeout=30), await states()
    finally:
        await proxy.cut()
