"""Record scopes on subscriptions: a webhook made by a user receives only events about records that
user may read (team A's rep: team A's customers; an admin: everything), keeps to what the creator
may read now (demoted, deactivated), and logs what it withheld as SKIPPED with the reason."""

import asyncio
import json
import uuid

from crm_common.contracts.identity import UserCreated, UserUpdated
from crm_common.events.envelope import event_from, new_event
from crm_common.testing.plugin import team_event

from .conftest import World, customer_created

API = "/api/v1/webhooks"
TEAM_SCOPES = {
    "customers": "team",
    "sales": "team",
    "activities": "team",
    "tickets": "team",
    "campaigns": "team",
}


def user_event(user_id, role, *, version=1, active=True, read_scopes=None, created=True):
    cls = UserCreated if created else UserUpdated
    user = cls(
        user_id=user_id,
        email=f"{user_id}@example.com",
        full_name=role,
        roles=[role],
        is_active=active,
        read_scopes=read_scopes,
    )
    return event_from(user, service="gateway", subject=user_id, sequence=version)


def customer_updated(customer_id, name="Renamed", **extra) -> object:
    return new_event(
        "customer.updated",
        service="customer",
        subject=customer_id,
        data={
            "customerId": str(customer_id),
            "customerNumber": "CUST-2026-000002",
            "fullName": name,
            "status": "LEAD",
            "changes": {"fullName": name},
            **extra,
        },
        sequence=2,
    )


async def setup(world: World, make_token):
    """Team A (rep a1, a2), team B (rep b1); a1's webhook and the admin's on the same receiver paths."""
    ids = {p: uuid.uuid4() for p in ("a1", "a2", "b1", "admin")}
    await world.publish(
        *(user_event(ids[p], "sales_rep", read_scopes=TEAM_SCOPES) for p in ("a1", "a2", "b1")),
        user_event(ids["admin"], "admin", read_scopes=dict.fromkeys(TEAM_SCOPES, "all")),
    )
    for name, members in (("A", ["a1", "a2"]), ("B", ["b1"])):
        ids[f"team {name}"] = uuid.uuid4()
        await world.publish(team_event(ids[f"team {name}"], name=name, member_ids=[ids[m] for m in members]))
    return ids


async def subscribe_as(world: World, headers, url: str) -> dict:
    r = await world.client.post(API, json={"url": url, "eventTypes": ["customer.*"]}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def rep_headers(make_token, user_id):
    # A sales rep's token (team scopes) through an API key granting webhooks:write, as the gateway signs it.
    token = make_token(
        ["sales_rep"],
        user_id=user_id,
        perms=["customers:read", "customers:write", "webhooks:read", "webhooks:write"],
        scp={c: ["team", "team"] for c in TEAM_SCOPES},
    )
    return {"Authorization": f"Bearer {token}"}


def names(requests) -> set[str]:
    return {json.loads(r.body)["data"]["fullName"] for r in requests}


async def log_of(world: World, hook) -> list[dict]:
    r = await world.client.get(
        f"{API}/{hook['id']}/deliveries", params={"pageSize": 100}, headers=world.admin
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_a_reps_webhook_gets_its_teams_customers_and_an_admins_gets_all(
    world: World, make_token, receiver
):
    from webhook_svc.receiver import Receiver

    ids = await setup(world, make_token)
    admin_receiver = await Receiver().start()
    try:
        rep_hook = await subscribe_as(world, rep_headers(make_token, ids["a1"]), receiver.url)
        assert (
            rep_hook["recordScopes"]["customers"] == "team" and rep_hook["recordScopes"]["tickets"] == "none"
        )
        admin_hook = await subscribe_as(world, world.admin, admin_receiver.url)
        assert set(admin_hook["recordScopes"].values()) == {"all"}

        of_a2, of_b1 = uuid.uuid4(), uuid.uuid4()
        await world.publish(
            customer_created("Team A Customer", customer_id=of_a2, assigned_to_id=ids["a2"]),
            customer_created("Team B Customer", customer_id=of_b1, assigned_to_id=ids["b1"]),
            customer_created("Nobody's Customer"),
        )
        # Events without the owner use the one an earlier event told.
        await world.publish(
            customer_updated(of_a2, "Team A Renamed"), customer_updated(of_b1, "Team B Renamed")
        )
        # An event about a customer no event told the owner of: not for a scoped webhook.
        unknown = uuid.uuid4()
        await world.publish(customer_updated(unknown, "Unknown Owner"))

        await admin_receiver.wait_for(6)
        await receiver.wait_for(2)
        await asyncio.sleep(0.3)
        assert names(receiver.received) == {"Team A Customer", "Team A Renamed"}
        assert len(receiver.received) == 2
        assert names(admin_receiver.received) == {
            "Team A Customer",
            "Team B Customer",
            "Nobody's Customer",
            "Team A Renamed",
            "Team B Renamed",
            "Unknown Owner",
        }

        log = await log_of(world, rep_hook)
        skipped = sorted(
            (d["subject"] == str(of_b1), d["skipReason"]) for d in log if d["state"] == "SKIPPED"
        )
        # B's created and renamed, nobody's, the unknown one.
        assert skipped == [
            (False, "OUT_OF_SCOPE"),
            (False, "RECORD_OWNER_UNKNOWN"),
            (True, "OUT_OF_SCOPE"),
            (True, "OUT_OF_SCOPE"),
        ]
        assert all(d["skipReason"] is None for d in log if d["state"] == "DELIVERED")
        one = next(d for d in log if d["state"] == "SKIPPED")
        r = await world.client.post(
            f"{API}/{rep_hook['id']}/deliveries/{one['id']}/replay", headers=world.admin
        )
        assert r.status_code == 409 and r.json()["code"] == "DELIVERY_SKIPPED"
    finally:
        await admin_receiver.stop()


async def test_a_demoted_or_deactivated_creator_stops_receiving(world: World, make_token, receiver):
    ids = await setup(world, make_token)
    hook = await subscribe_as(world, rep_headers(make_token, ids["a1"]), receiver.url)
    of_a1, of_a2 = uuid.uuid4(), uuid.uuid4()
    await world.publish(
        customer_created("Mine", customer_id=of_a1, assigned_to_id=ids["a1"]),
        customer_created("Teammate's", customer_id=of_a2, assigned_to_id=ids["a2"]),
    )
    await receiver.wait_for(2)

    # A role redefined to `own`: the teammate's customer is no longer theirs to read.
    own = dict(TEAM_SCOPES, customers="own")
    await world.publish(user_event(ids["a1"], "sales_rep", version=2, read_scopes=own, created=False))
    await world.publish(
        customer_updated(of_a2, "Teammate's Renamed"), customer_updated(of_a1, "Mine Renamed")
    )
    await receiver.wait_for(3)
    await asyncio.sleep(0.3)
    assert names(receiver.received) == {"Mine", "Teammate's", "Mine Renamed"}

    # An older event arriving late changes nothing; deactivation stops everything.
    await world.publish(user_event(ids["a1"], "sales_rep", version=1, read_scopes=TEAM_SCOPES, created=False))
    await world.publish(
        user_event(ids["a1"], "sales_rep", version=3, read_scopes=own, active=False, created=False)
    )
    await world.publish(customer_updated(of_a1, "Mine Again"), customer_updated(of_a2, "Teammate's Again"))
    reasons = sorted(d["skipReason"] for d in await log_of(world, hook) if d["state"] == "SKIPPED")
    assert reasons == ["CREATOR_INACTIVE", "CREATOR_INACTIVE", "OUT_OF_SCOPE"]
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 3


async def test_the_owner_and_team_carried_by_customer_events_decide(world: World, make_token, receiver):
    ids = await setup(world, make_token)
    hook = await subscribe_as(world, rep_headers(make_token, ids["a1"]), receiver.url)
    team_a, team_b = uuid.uuid4(), uuid.uuid4()
    # Unassigned but of team A (readable by team A's rep), then moved to team B (not any more).
    await world.publish(customer_updated(team_a, "Team A's Record", owner={"teamId": str(ids["team A"])}))
    await world.publish(customer_updated(team_b, "Team B's Record", owner={"teamId": str(ids["team B"])}))
    (got,) = await receiver.wait_for(1)
    assert names([got]) == {"Team A's Record"}
    # customer.archived carries no owner: the one kept from the last event decides.
    archived = new_event(
        "customer.archived",
        service="customer",
        subject=team_a,
        data={
            "customerId": str(team_a),
            "customerNumber": "CUST-2026-000002",
            "archivedAt": "2026-12-07T03:00:00Z",
        },
        sequence=3,
    )
    await world.publish(archived)
    await receiver.wait_for(2)
    log = await log_of(world, hook)
    # (The last one may still be recording its attempt: PENDING or DELIVERED, it was sent.)
    assert sorted((d["eventType"], d["state"] == "SKIPPED") for d in log) == [
        ("customer.archived", False),
        ("customer.updated", False),
        ("customer.updated", True),
    ]


def customer_archived(customer_id) -> object:
    data = {
        "customerId": str(customer_id),
        "customerNumber": "CUST-2026-000002",
        "archivedAt": "2026-12-07T03:00:00Z",
    }
    return new_event("customer.archived", service="customer", subject=customer_id, data=data, sequence=3)


async def test_an_owner_told_before_any_webhook_existed_decides_for_a_later_one(
    world: World, make_token, receiver
):
    """Nobody wanted the events that told the owners, so they were kept alone (one row each, with the
    inbox's claim); a webhook made afterwards is judged by them: its creator's team's record goes
    out, the other team's is withheld as out of scope, not as of an unknown owner."""
    ids = await setup(world, make_token)
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    told = [
        customer_updated(ours, "Ours", owner={"teamId": str(ids["team A"])}),
        customer_updated(theirs, "Theirs", owner={"teamId": str(ids["team B"])}),
    ]
    await world.publish(*told)
    hook = await subscribe_as(world, rep_headers(make_token, ids["a1"]), receiver.url)
    await world.publish(customer_archived(ours), customer_archived(theirs))
    (got,) = await receiver.wait_for(1)
    assert json.loads(got.body)["data"]["customerId"] == str(ours)
    log = await log_of(world, hook)
    assert sorted((d["subject"] == str(ours), d["skipReason"]) for d in log) == [
        (False, "OUT_OF_SCOPE"),
        (True, None),
    ]
    # Delivered again, the events that told the owners are duplicates: the webhook gets nothing.
    await world.publish(*told)
    assert len(await log_of(world, hook)) == 2
