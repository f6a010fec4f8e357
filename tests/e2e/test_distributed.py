"""End to end in distributed mode: one process per service plus the gateway (`crm serve <name>`, as
docker-compose runs them) on a fresh Postgres database and a namespaced set of RabbitMQ exchanges and
queues, all removed again afterwards."""

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.exceptions import AMQPError
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.rabbitmq_bus import RabbitBus
from crm_common.testing.plugin import eventually
from crm_gateway.distributed import run_distributed
from crm_gateway.settings import SERVICES
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "e2e-Secret-pass-1"
NOTE_TIMEOUT = 15.0


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports, below the kernel's ephemeral range so outgoing
    connections do not take them while the processes start."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def _plain_url(url: str, database: str | None = None) -> str:
    """postgresql://... (no driver suffix) for asyncpg and for `crm serve`, optionally another db."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def pg_database(postgres_url) -> AsyncIterator[str]:
    """A fresh, uniquely named Postgres database (URL), dropped afterwards even if still in use."""
    name = f"crm_e2e_{uuid.uuid4().hex[:12]}"
    server = _plain_url(postgres_url)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield _plain_url(postgres_url, name)
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _delete_topology(amqp_url: str, namespace: str) -> None:
    names = RabbitBus(amqp_url, namespace=namespace)
    queues = [q for c in SUBSCRIPTIONS for q in (names.queue_name(c), names.dead_letter_queue_name(c))]
    exchanges = [names.exchange_name, names.dlx_name]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for kind, name in [*(("queue", q) for q in queues), *(("exchange", e) for e in exchanges)]:
            # A failed delete closes its channel: one channel per delete.
            channel = await connection.channel()
            try:
                if kind == "queue":
                    await channel.queue_delete(name)
                else:
                    await channel.exchange_delete(name)
            except AMQPError:
                pass
            finally:
                if not channel.is_closed:
                    await channel.close()


@pytest.fixture
async def broker_namespace(amqp_url, events_namespace) -> AsyncIterator[str]:
    """The test's exchange/queue name prefix; everything declared under it is deleted afterwards."""
    yield events_namespace
    await _delete_topology(amqp_url, events_namespace)


@dataclass
class Platform:
    gateway: str
    services: dict[str, str]
    namespace: str


@pytest.fixture
def platform(pg_database, amqp_url, broker_namespace, tmp_path) -> Iterator[Platform]:
    """Every service and the gateway as processes. Declared after the database and the broker
    namespace, so it is torn down (processes stopped) before they are removed."""
    base = free_port_block(1 + len(SERVICES))
    with run_distributed(
        database_url=pg_database,
        amqp_url=amqp_url,
        data_dir=tmp_path / "data",
        gateway_port=base,
        service_base_port=base + 1,
        events_namespace=broker_namespace,
        extra_env={
            "CRM_ADMIN_EMAIL": ADMIN_EMAIL,
            "CRM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # The test's webhook receiver listens on this machine; a short retry schedule.
            "CRM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CRM_WEBHOOK_RETRY_SCHEDULE_SECONDS": "0,0.5,1,2,4,8",
        },
        startup_timeout=45,
    ) as gateway:
        # run_distributed numbers the services from service_base_port in SERVICES order.
        services = {name: f"http://127.0.0.1:{base + 1 + i}" for i, name in enumerate(SERVICES)}
        yield Platform(gateway, services, broker_namespace)


async def customer_notes(client: httpx.AsyncClient, customer_id: str) -> list[dict]:
    resp = await client.get("/api/v1/activities", params={"customerId": customer_id})
    assert resp.status_code == 200, resp.text
    return [a for a in resp.json()["items"] if a["subject"] == "Customer created"]


async def test_first_slice_across_processes(platform: Platform, amqp_url):
    async with httpx.AsyncClient(timeout=10) as direct:
        for name, url in platform.services.items():
            ready = await direct.get(url + "/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"] == {"database": True, "broker": True}, name
        assert (await direct.get(platform.gateway + "/readyz")).status_code == 200

    # An outside subscriber, as another system would bind one to the platform's exchange.
    names = RabbitBus(amqp_url, namespace=platform.namespace)
    connection = await aio_pika.connect(amqp_url)
    async with connection, httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.exchange_name, ensure=True)
        subscriber = await channel.declare_queue(exclusive=True, auto_delete=True)
        await subscriber.bind(exchange, routing_key="customer.created")

        resp = await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert resp.status_code == 200, resp.text
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        me = await client.get("/api/v1/me")
        assert me.status_code == 200, me.text

        # A bad request is a problem document from the service, passed through unchanged.
        invalid = await client.post("/api/v1/customers", json={"firstName": "Grace"})
        assert invalid.status_code == 422, invalid.text
        assert invalid.headers["content-type"].startswith("application/problem+json")
        assert invalid.json()["code"] == "VALIDATION_ERROR"

        request_id = f"e2e-{uuid.uuid4().hex}"
        created = await client.post(
            "/api/v1/customers",
            json={"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com"},
            headers={"X-Request-ID": request_id},
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == request_id
        customer = created.json()

        # The event on the broker: a CloudEvent correlated with the request the gateway passed on.
        message = None
        for _ in range(int(NOTE_TIMEOUT / 0.05)):
            message = await subscriber.get(no_ack=True, fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None, "no customer.created event reached the exchange"
        assert message.content_type == "application/cloudevents+json"
        event = json.loads(message.body)
        assert event["type"] == "crm.customer.created"
        assert event["source"] == "/crm/customer"
        assert event["subject"] == customer["id"]
        assert event["correlationid"] == request_id
        assert event["data"]["customerId"] == customer["id"]

        # activity-svc consumed it from its own queue: exactly one system note.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NOTE_TIMEOUT
        while not (notes := await customer_notes(client, customer["id"])):
            assert loop.time() < deadline, f"no 'Customer created' note after {NOTE_TIMEOUT}s"
            await asyncio.sleep(0.05)
        # The same email again is a conflict: no second customer, event or note follows from it.
        duplicate = await client.post(
            "/api/v1/customers",
            json={"firstName": "Grace", "lastName": "H.", "email": "GRACE@example.com"},
        )
        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.headers["content-type"].startswith("application/problem+json")
        assert duplicate.json()["code"] == "CUSTOMER_EMAIL_EXISTS"

        await asyncio.sleep(0.3)  # give a duplicate delivery the chance to show up
        notes = await customer_notes(client, customer["id"])
        assert len(notes) == 1, notes
        assert notes[0]["type"] == "NOTE"
        assert notes[0]["system"] is True
        assert notes[0]["ownerId"] == me.json()["id"]
        assert notes[0]["sourceEventId"] == event["id"]
        assert (await client.get("/api/v1/activities")).json()["total"] == 1
        assert (await client.get("/api/v1/customers")).json()["total"] == 1
        assert await subscriber.get(no_ack=True, fail=False) is None

    # The web console is served by the distributed gateway too, and reaches the services over HTTP.
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as browser:
        form = await browser.get("/app/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        signed_in = await browser.post(
            "/app/login",
            data={"csrf": csrf, "username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/app"},
        )
        assert signed_in.status_code == 303, signed_in.text
        listed = await browser.get("/app/customers", params={"q": "Hopper"})
        assert listed.status_code == 200
        assert f'href="/app/customers/{customer["id"]}">Grace Hopper</a>' in listed.text
        page = await browser.get(f"/app/customers/{customer['id']}")
        assert "Customer created" in page.text
        assert (await browser.get("/app")).status_code == 200
        assert (await browser.get("/app/pipeline")).status_code == 200


async def test_a_customer_is_usable_everywhere_at_once_across_processes(platform: Platform):
    """100 create-then-reference pairs with no wait, on Postgres and RabbitMQ: no context refuses a
    customer it has not heard of yet (it asks customer-svc over HTTP with the service credential)."""
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
        resp = await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        campaign = (await client.post("/api/v1/campaigns", json={"name": "E2E", "type": "EMAIL"})).json()[
            "id"
        ]
        refused = []
        for n in range(100):
            created = await client.post(
                "/api/v1/customers",
                json={"firstName": "Pair", "lastName": str(n), "email": f"pair{n}@example.com"},
            )
            assert created.status_code == 201, created.text
            cid = created.json()["id"]
            answers = {
                "activity": await client.post(
                    "/api/v1/activities",
                    json={
                        "type": "CALL",
                        "subject": "Intro",
                        "customerId": cid,
                        "startDate": "2026-12-01T09:00:00Z",
                    },
                ),
                "opportunity": await client.post(
                    "/api/v1/opportunities", json={"title": "Deal", "customerId": cid}
                ),
                "ticket": await client.post(
                    "/api/v1/tickets",
                    json={"subject": "Help", "description": "Broken", "customerId": cid, "type": "QUESTION"},
                ),
                "target": await client.post(
                    f"/api/v1/campaigns/{campaign}/targets", json={"customerIds": [cid]}
                ),
            }
            for kind, r in answers.items():
                ok = (
                    r.status_code == 200 and r.json()["added"] == [cid]
                    if kind == "target"
                    else r.status_code == 201 and r.json()["customerId"] == cid
                )
                if not ok:
                    refused.append((n, kind, r.status_code, r.text[:200]))
        assert refused == []
        ghost = await client.post(
            "/api/v1/opportunities", json={"title": "X", "customerId": str(uuid.uuid4())}
        )
        assert ghost.status_code == 422 and ghost.json()["code"] == "UNKNOWN_CUSTOMER"

        # Read your writes through the gateway's HTTP proxy: convert, then read the opportunity the
        # conversion created in pipeline-svc, on the first try.
        lead = await client.post(
            "/api/v1/customers", json={"firstName": "Lead", "lastName": "One", "email": "lead1@example.com"}
        )
        converted = await client.post(
            f"/api/v1/customers/{lead.json()['id']}/convert", json={"opportunity": {"title": "Converted"}}
        )
        assert converted.status_code == 200, converted.text
        token = converted.headers["CRM-Consistency-Token"]
        opportunity_id = converted.json()["opportunity"]["opportunityId"]
        read = await client.get(
            f"/api/v1/opportunities/{opportunity_id}", headers={"CRM-Consistency-Token": token}
        )
        assert read.status_code == 200 and "crm-consistency" not in read.headers, read.text
        bad = await client.get("/api/v1/customers", headers={"CRM-Consistency-Token": "nonsense"})
        assert bad.status_code == 400 and bad.json()["code"] == "INVALID_CONSISTENCY_TOKEN"

        # Win, then the customer's lifetimeValue (customer-svc) includes it.
        customer_id = lead.json()["id"]
        deal = await client.post(
            "/api/v1/opportunities",
            json={"title": "Deal", "customerId": customer_id, "amount": "300.00", "currency": "USD"},
        )
        won = await client.post(f"/api/v1/opportunities/{deal.json()['id']}/win")
        assert won.status_code == 200, won.text
        after = await client.get(
            f"/api/v1/customers/{customer_id}",
            headers={"CRM-Consistency-Token": won.headers["CRM-Consistency-Token"]},
        )
        assert "crm-consistency" not in after.headers and after.json()["lifetimeValue"] == "300.00", (
            after.json()
        )

        # Merge, then the secondary's ticket (ticket-svc) already points at the survivor.
        secondary = (
            await client.post(
                "/api/v1/customers",
                json={"firstName": "Dup", "lastName": "Licate", "email": "dup@example.com"},
            )
        ).json()["id"]
        ticket = await client.post(
            "/api/v1/tickets",
            json={"subject": "Help", "description": "Broken", "customerId": secondary, "type": "QUESTION"},
        )
        assert ticket.status_code == 201, ticket.text
        merged = await client.post(
            "/api/v1/customers/merge",
            json={"primaryCustomerId": customer_id, "secondaryCustomerId": secondary},
        )
        assert merged.status_code == 200, merged.text
        moved = await client.get(
            f"/api/v1/tickets/{ticket.json()['id']}",
            headers={"CRM-Consistency-Token": merged.headers["CRM-Consistency-Token"]},
        )
        assert "crm-consistency" not in moved.headers and moved.json()["customerId"] == customer_id


async def test_webhooks_across_processes(platform: Platform):
    """webhook-svc as its own process on Postgres, fed by RabbitMQ: a receiver subscribed through the
    gateway gets each event signed (verified with `standardwebhooks`), and the backlog after an outage."""
    from standardwebhooks import Webhook
    from webhook_svc.receiver import Receiver

    receiver = await Receiver().start()
    try:
        async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
            resp = await client.post(
                "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
            refused = await client.post(
                "/api/v1/webhooks", json={"url": "http://10.0.0.1/x", "eventTypes": ["customer.*"]}
            )
            assert refused.status_code == 422 and refused.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
            hook = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "eventTypes": ["customer.created"]}
            )
            assert hook.status_code == 201, hook.text
            verifier = Webhook(hook.json()["secret"])

            async def create(email: str) -> str:
                r = await client.post(
                    "/api/v1/customers", json={"firstName": "W", "lastName": "H", "email": email}
                )
                assert r.status_code == 201, r.text
                return r.json()["id"]

            first = await create("hook1@example.com")
            (got,) = await receiver.wait_for(1, timeout=NOTE_TIMEOUT)
            body = verifier.verify(got.body, got.headers)
            assert (body["type"], body["subject"]) == ("crm.customer.created", first)

            await receiver.stop()
            second = await create("hook2@example.com")

            async def failed_while_down():
                log = (await client.get(f"/api/v1/webhooks/{hook.json()['id']}/deliveries")).json()["items"]
                return any(d["subject"] == second and d["totalAttempts"] >= 1 for d in log)

            assert await eventually(failed_while_down, timeout=NOTE_TIMEOUT)
            await receiver.start()
            got = await receiver.wait_for(2, timeout=NOTE_TIMEOUT)
            assert verifier.verify(got[1].body, got[1].headers)["subject"] == second
    finally:
        await receiver.stop()


async def test_erasure_reaches_every_postgres_schema(platform: Platform, pg_database):
    """GDPR art. 17 in distributed mode: after `POST /customers/{id}/erase` and `customer.erased` over
    RabbitMQ, no table of any schema of the Postgres database holds the person's strings (the same
    proof as gateway/tests/test_erasure.py on SQLite)."""
    secrets = {"Zanzibarella", "Quixotefeld", "zanzi.quix@example.com", "Marmaduke-77", "DE-IBAN-4455-ZQ"}

    async def leftovers() -> set[str]:
        conn = await asyncpg.connect(pg_database)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            found = set()
            for t in tables:
                name = f'"{t["table_schema"]}"."{t["table_name"]}"'
                for row in await conn.fetch(f"SELECT row_to_json(t)::text AS j FROM {name} t"):
                    found |= {f"{name}: {s}" for s in secrets if s.lower() in row["j"].lower()}
            return found
        finally:
            await conn.close()

    async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
        resp = await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        resp = await client.post(
            "/api/v1/customers",
            json={"firstName": "Zanzibarella", "lastName": "Quixotefeld", "email": "zanzi.quix@example.com"},
        )
        assert resp.status_code == 201, resp.text
        cid = resp.json()["id"]

        async def created(path: str, body: dict) -> dict:
            async def attempt():
                r = await client.post(path, json=body)
                assert r.status_code in (201, 422), r.text
                return r.status_code == 201 and r.json()

            return await eventually(attempt, timeout=NOTE_TIMEOUT)

        await created(
            "/api/v1/activities",
            {
                "type": "CALL",
                "subject": "Call Zanzibarella",
                "customerId": cid,
                "startDate": "2030-01-01T10:00:00Z",
            },
        )
        ticket = await created(
            "/api/v1/tickets",
            {
                "subject": "Quixotefeld refund",
                "description": "Marmaduke-77",
                "customerId": cid,
                "type": "REQUEST",
            },
        )
        resp = await client.post(
            f"/api/v1/tickets/{ticket['id']}/communications",
            json={"direction": "INBOUND", "channel": "EMAIL", "body": "IBAN DE-IBAN-4455-ZQ"},
        )
        assert resp.status_code == 201, resp.text
        opportunity = await created(
            "/api/v1/opportunities", {"title": "Quixotefeld renewal", "customerId": cid, "amount": "900.00"}
        )

        async def everywhere():
            schemas = {hit.split(".")[0] for hit in await leftovers()}
            return len(schemas) >= 4 and schemas

        assert await eventually(everywhere, timeout=NOTE_TIMEOUT), await leftovers()
        resp = await client.post(f"/api/v1/customers/{cid}/erase")
        assert resp.status_code == 202, resp.text

        async def scrubbed():
            return not await leftovers()

        await eventually(scrubbed, timeout=30)
        assert await leftovers() == set()
        resp = await client.get(f"/api/v1/opportunities/{opportunity['id']}")
        assert resp.json()["amount"] == "900.00"


def test_a_service_served_by_two_workers(pg_database, amqp_url, broker_namespace, tmp_path):
    """`crm serve customer --workers 2`: two processes of customer-svc on one port, each a replica
    that started (migrations behind their advisory lock) and is ready, stopped together by SIGTERM.
    On SQLite it is refused."""
    port = free_port_block(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATA_DIR": str(tmp_path / "data"), "CRM_EVENTS_NAMESPACE": broker_namespace}
    command = [
        sys.executable,
        "-m",
        "crm_gateway.cli",
        "serve",
        "customer",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--workers needs Postgres" in refused.stderr

    env |= {"CRM_DATABASE_URL": pg_database, "CRM_AMQP_URL": amqp_url}
    log = tmp_path / "serve.err"
    with open(log, "wb") as err:
        supervisor = subprocess.Popen(command, env=env, stderr=err, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert supervisor.poll() is None, log.read_text()[-3000:]
            said = log.read_text()
            workers = [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", said)]
            if len(workers) == 2 and said.count("Application startup complete") == 2:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        # Ready (the broker connects after start) ten times in a row, whichever worker answers.
        in_a_row = 0
        while in_a_row < 10:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            both = ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
            in_a_row = in_a_row + 1 if both else 0
            assert time.monotonic() < deadline + 30, ready.text
            time.sleep(0.05)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
            raise
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)
