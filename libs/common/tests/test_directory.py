"""The user and team directory services keep from the gateway's events."""

import uuid

import pytest
from crm_common import directory
from crm_common.contracts.identity import TeamCreated, UserCreated, UserUpdated
from crm_common.errors import ProblemError
from crm_common.events.envelope import new_event


@pytest.fixture
async def dir_db(db):
    async with db.engine.begin() as conn:
        await conn.run_sync(directory.metadata.create_all)
    return db


def user_event(cls, user_id, version, *, name="Ann", active=True):
    payload = cls(
        user_id=user_id, email="ann@example.com", full_name=name, roles=["sales_rep"], is_active=active
    )
    return new_event(
        cls.event_type, service="gateway", subject=user_id, data=payload.dump(), sequence=version
    )


async def apply(db, event):
    async with db.transaction() as s:
        await directory.HANDLERS[event.routing_key](s, event)


async def test_the_newest_version_wins_in_any_delivery_order(dir_db):
    uid = uuid.uuid4()
    await apply(dir_db, user_event(UserUpdated, uid, 3, name="Ann Third"))
    await apply(dir_db, user_event(UserCreated, uid, 1, name="Ann First"))
    await apply(dir_db, user_event(UserUpdated, uid, 2, name="Ann Second"))
    async with dir_db.transaction() as s:
        assert await directory.user_names(s, [uid, uuid.uuid4(), None]) == {uid: "Ann Third"}


async def test_only_known_active_users_and_teams_pass(dir_db):
    active, inactive = uuid.uuid4(), uuid.uuid4()
    await apply(dir_db, user_event(UserCreated, active, 1))
    await apply(dir_db, user_event(UserCreated, inactive, 1))
    await apply(dir_db, user_event(UserUpdated, inactive, 2, active=False))
    team = uuid.uuid4()
    payload = TeamCreated(team_id=team, name="EMEA", type="SALES", member_ids=[active])
    await apply(
        dir_db, new_event("team.created", service="gateway", subject=team, data=payload.dump(), sequence=1)
    )
    async with dir_db.transaction() as s:
        await directory.require_active_user(s, active, field="assignedToId")
        await directory.require_active_team(s, team, field="teamId")
        for unknown in (inactive, uuid.uuid4()):
            with pytest.raises(ProblemError) as err:
                await directory.require_active_user(s, unknown, field="assignedToId")
            assert (err.value.status, err.value.code) == (422, "UNKNOWN_USER")
            assert err.value.errors[0].field == "assignedToId"
        with pytest.raises(ProblemError) as err:
            await directory.require_active_team(s, uuid.uuid4(), field="teamId")
        assert err.value.code == "UNKNOWN_TEAM"
