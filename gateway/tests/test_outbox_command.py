"""`crm events outbox list|replay <service>` on the embedded default: rows not sent are listed with
their age, and a replay publishes events again, applied only where they had not been (the inbox)."""

import argparse
import json
import uuid

import sqlalchemy as sa
from activity_svc.models import Activity
from crm_common.events.tables import inbox, outbox
from crm_common.testing.plugin import eventually
from crm_gateway import dlq
from crm_gateway import outbox as outbox_command

from . import test_dead_letters as embedded

# The embedded CRM (customer-svc and activity-svc) of the dead-letter tests, and their helpers.
data_dir, crm = embedded.data_dir, embedded.crm
create_customers, created_notes, crm_command, runtime = (
    embedded.create_customers,
    embedded.created_notes,
    embedded.crm_command,
    embedded.runtime,
)


async def outbox_command_run(capsys, *args: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="crm events")
    outbox_command.add_commands(dlq.add_commands(parser))
    capsys.readouterr()
    status = await outbox_command.run(parser.parse_args(["outbox", *args]))
    return status, capsys.readouterr().out


async def states(client) -> dict[str, int]:
    async with runtime(client, "customer").db.transaction(read_only=True) as s:
        rows = await s.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))
        return dict(rows.all())


async def test_list_shows_unsent_rows_with_age_and_replay_reapplies_only_what_was_lost(crm, data_dir, capsys):
    ids = await create_customers(crm, 3)
    await eventually(lambda: _all_published(crm, 3), timeout=30)
    assert await outbox_command_run(capsys, "list", "customer") == (
        0,
        "No PENDING/FAILED/UNROUTED outbox rows in customer.\n",
    )

    # A row that is not an event (written by hand, say) is set aside as FAILED, listed with its age.
    bad = uuid.uuid4()
    async with runtime(crm, "customer").db.transaction() as s:
        await s.execute(
            sa.insert(outbox).values(
                event_id=bad,
                routing_key="customer.created",
                payload={"oops": True},
                created_at=sa.func.now(),
                state="PENDING",
                attempts=0,
            )
        )
    await eventually(lambda: _failed(crm), timeout=20)
    listed = crm_command(data_dir, "events", "outbox", "list", "customer", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["rows"]
    assert (row["eventId"], row["state"], row["type"]) == (str(bad), "FAILED", "crm.customer.created")
    assert row["lastError"].startswith("not a CloudEvent:") and row["ageSeconds"] >= 0

    # activity-svc loses what it knew of the first customer (an older backup restored, say).
    lost = ids[0]
    async with runtime(crm, "customer").db.transaction(read_only=True) as s:
        payloads = (await s.execute(sa.select(outbox.c.event_id, outbox.c.payload))).all()
    (lost_event,) = [e for e, p in payloads if p.get("data", {}).get("customerId") == lost]
    async with runtime(crm, "activity").db.transaction() as s:
        await s.execute(sa.delete(Activity).where(Activity.customer_id == uuid.UUID(lost)))
        await s.execute(sa.delete(inbox).where(inbox.c.event_id == lost_event))
    assert lost not in await created_notes(crm)

    status, out = await outbox_command_run(
        capsys, "replay", "customer", "--since", "10m", "--type", "customer.created"
    )
    # The three customers' events and the row that is not one (it fails again).
    assert status == 0 and out.startswith("4 event(s) of customer set to PENDING"), out

    async def noted():
        notes = await created_notes(crm)
        return notes if lost in notes else None

    # Applied again where it was lost, skipped through the inbox where it was not.
    notes = await eventually(noted, timeout=20)
    assert notes == dict.fromkeys(ids, 1)
    await eventually(lambda: _all_published(crm, 3), timeout=20)
    assert (await states(crm)).get("FAILED") == 1

    # Replaying by id an event every consumer has: nothing changes.
    async with runtime(crm, "customer").db.transaction(read_only=True) as s:
        first = (await s.execute(sa.select(outbox.c.event_id).order_by(outbox.c.position))).scalars().first()
    status, out = await outbox_command_run(capsys, "replay", "customer", "--id", str(first))
    assert status == 0 and out.startswith("1 event(s)"), out
    await eventually(lambda: _all_published(crm, 3), timeout=20)
    assert await created_notes(crm) == notes

    assert await outbox_command_run(capsys, "replay", "customer", "--id", str(uuid.uuid4())) == (
        1,
        "No outbox row of customer matches.\n",
    )


async def _all_published(client, n) -> bool:
    return (await states(client)).get("PUBLISHED") == n


async def _failed(client) -> bool:
    return (await states(client)).get("FAILED") == 1
