"""The customers every context keeps from customer-svc's events (crm_common.customer_refs): one version
rule, one merge-chain rule, the same survivor whatever the delivery order."""

import itertools
import uuid

import pytest
import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.contracts.customer import CustomerCreated, CustomerMerged, CustomerUpdated
from crm_common.errors import ProblemError
from crm_common.events.envelope import new_event

# A stand-in for a service's rows that name a customer (opportunities, tickets...).
rows_metadata = sa.MetaData()
things = sa.Table(
    "things",
    rows_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.Uuid, nullable=False),
)


async def repoint(session, moves, event):
    for old, survivor in moves.items():
        await session.execute(
            sa.update(things).where(things.c.customer_id == old).values(customer_id=survivor)
        )


HANDLERS = customer_refs.handlers(repoint)


@pytest.fixture
async def refs_db(db):
    async with db.engine.begin() as conn:
        await conn.run_sync(customer_refs.metadata.create_all)
        await conn.run_sync(rows_metadata.create_all)
    return db


def created(cid, version=1, *, name="Acme", priority=None):
    payload = CustomerCreated(
        customer_id=cid,
        customer_number=f"CUST-{version}",
        type="COMPANY",
        full_name=name,
        email="a@example.com",
        status="CUSTOMER",
        priority=priority,
    )
    return new_event(
        payload.event_type, service="customer", subject=cid, data=payload.dump(), sequence=version
    )


def updated(cid, version, *, name, changes=None):
    payload = CustomerUpdated(
        customer_id=cid,
        customer_number=f"CUST-{version}",
        full_name=name,
        status="CUSTOMER",
        changes=changes or {"fullName": name},
    )
    return new_event(
        payload.event_type, service="customer", subject=cid, data=payload.dump(), sequence=version
    )


def merged(primary, secondary, version):
    payload = CustomerMerged(
        primary_customer_id=primary,
        secondary_customer_id=secondary,
        primary_customer_number="P",
        secondary_customer_number="S",
        primary_full_name=f"primary {primary}",
        secondary_full_name=f"secondary {secondary}",
    )
    return new_event(
        payload.event_type, service="customer", subject=primary, data=payload.dump(), sequence=version
    )


async def apply(db, *events):
    for event in events:
        async with db.transaction() as s:
            await HANDLERS[event.routing_key](s, event)


async def state(db, ids):
    """{customer: survivor} and where the rows naming each customer sit now."""
    async with db.transaction() as s:
        survivors = {cid: await customer_refs.resolve(s, cid) for cid in ids}
        rows = dict((await s.execute(sa.select(things.c.id, things.c.customer_id))).all())
    return survivors, rows


async def deliver_in_every_order(db, build):
    """For each order of the merges `build(ids)` gives (fresh customers each time, one row each):
    the survivors and where the rows ended, in terms of positions in `ids`."""
    outcomes = set()
    probe = build([uuid.uuid4() for _ in range(4)])
    for order in itertools.permutations(range(len(probe))):
        ids = [uuid.uuid4() for _ in range(4)]
        events = build(ids)
        async with db.transaction() as s:
            await s.execute(sa.delete(things))
            await s.execute(sa.insert(things), [{"id": i, "customer_id": cid} for i, cid in enumerate(ids)])
        await apply(db, *(created(cid) for cid in ids))
        await apply(db, *(events[i] for i in order))
        survivors, rows = await state(db, ids)
        outcomes.add(
            (
                tuple(ids.index(survivors[cid]) for cid in ids),
                tuple(ids.index(rows[i]) for i in range(len(ids))),
            )
        )
    return outcomes


async def test_a_merge_chain_in_any_order_ends_on_the_last_primary(refs_db):
    # A into B, B into C, C into D.
    outcomes = await deliver_in_every_order(
        refs_db, lambda ids: [merged(ids[1], ids[0], 2), merged(ids[2], ids[1], 3), merged(ids[3], ids[2], 4)]
    )
    assert outcomes == {((3, 3, 3, 3), (3, 3, 3, 3))}


async def test_a_merge_cycle_in_any_order_ends_on_its_smallest_id(refs_db):
    def cycle(ids):
        ids[:3] = sorted(ids[:3], key=lambda i: i.int)  # position 0: the cycle's smallest id
        return [merged(ids[1], ids[0], 2), merged(ids[2], ids[1], 2), merged(ids[0], ids[2], 2)]

    outcomes = await deliver_in_every_order(refs_db, cycle)
    # The fourth customer takes no part and keeps its row.
    assert outcomes == {((0, 0, 0, 3), (0, 0, 0, 3))}


async def test_two_merges_of_one_secondary_keep_the_newer_whatever_comes_first(refs_db):
    """Bad data (customer-svc merges a customer once): the newer edge stays in any order. Rows the
    older merge already moved cannot be told from the primary's own, so only the survivors agree."""
    outcomes = await deliver_in_every_order(
        refs_db, lambda ids: [merged(ids[1], ids[0], 5), merged(ids[2], ids[0], 7)]
    )
    assert {survivors for survivors, _ in outcomes} == {(2, 1, 2, 3)}


async def test_redelivery_changes_nothing(refs_db):
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with refs_db.transaction() as s:
        await s.execute(sa.insert(things), [{"customer_id": a}, {"customer_id": b}])
    history = [
        created(a),
        created(b),
        created(c),
        merged(b, a, 2),
        merged(c, b, 3),
        updated(c, 4, name="Cee"),
    ]
    await apply(refs_db, *history)
    first = await state(refs_db, [a, b, c])
    async with refs_db.transaction() as s:
        before = [tuple(r) for r in await s.execute(sa.select(customer_refs.refs).order_by("id"))]
    await apply(refs_db, *history, *reversed(history))
    assert await state(refs_db, [a, b, c]) == first
    assert set(first[1].values()) == {c}
    async with refs_db.transaction() as s:
        after = [tuple(r) for r in await s.execute(sa.select(customer_refs.refs).order_by("id"))]
    # Only updated_at could move, and it does not: nothing was applied again.
    assert after == before


async def test_only_a_strictly_newer_version_applies(refs_db):
    cid = uuid.uuid4()
    await apply(refs_db, updated(cid, 3, name="Third"), created(cid, 1, name="First", priority="HIGH"))
    await apply(refs_db, updated(cid, 3, name="Third again"), updated(cid, 2, name="Second"))
    async with refs_db.transaction() as s:
        row = await customer_refs.get(s, cid)
        assert (row.full_name, row.version) == ("Third", 3)
        assert await customer_refs.names(s, [cid, uuid.uuid4(), None]) == {cid: "Third"}


async def test_a_write_naming_a_merged_customer_goes_to_the_survivor(refs_db):
    a, b, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply(refs_db, created(a), created(b, name="Bee"), merged(b, a, 2))
    async with refs_db.transaction() as s:
        assert (await customer_refs.require(s, a, field="customerId")).id == b
        with pytest.raises(ProblemError) as refused:
            await customer_refs.require(s, unknown, field="customerId")
    assert refused.value.status == 422 and refused.value.code == "UNKNOWN_CUSTOMER"
    assert refused.value.errors[0].field == "customerId"


async def test_apply_created_tells_whether_the_customer_stands_for_itself(refs_db):
    """True only when it wrote the row and the customer is merged into nobody: a caller may then file
    a record under the customer without resolving it (activity-svc's "Customer created" note)."""
    fresh, merged_first, primary = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with refs_db.transaction() as s:
        assert await customer_refs.apply_created(s, created(fresh)) is True
    # A merge heard of before the creation: the customer stands for its primary.
    await apply(refs_db, merged(primary, merged_first, 3))
    async with refs_db.transaction() as s:
        assert await customer_refs.apply_created(s, created(merged_first)) is False
    # Older than what is stored: nothing written, nothing known from it.
    await apply(refs_db, updated(fresh, 2, name="Renamed"))
    async with refs_db.transaction() as s:
        assert await customer_refs.apply_created(s, created(fresh)) is False
        assert (await customer_refs.get(s, fresh)).full_name == "Renamed"
