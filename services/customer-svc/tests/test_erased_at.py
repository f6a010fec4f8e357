"""`erasedAt` on the customer: set by the erasure (GDPR art. 17), null otherwise; an install upgraded
from before the column gets it for the customers erased earlier (recognised by their email)."""

from pathlib import Path

import customer_svc
from crm_common.migrations import downgrade, migrate

from .conftest import create

BEFORE_ERASED_AT = "c4a7e2d91b30"


async def test_the_erasure_sets_erased_at_and_the_migration_backfills_it(client, auth_headers):
    admin = auth_headers("admin")
    person = await create(client, admin, firstName="Ann", lastName="Person")
    other = await create(client, admin, firstName="Bo", lastName="Other")
    assert person["erasedAt"] is None

    r = await client.post(f"/api/v1/customers/{person['id']}/erase", headers=admin)
    assert r.status_code == 202, r.text
    erased = r.json()
    assert erased["erasedAt"] is not None and erased["email"].endswith("@erased.invalid")
    # Erasing again changes nothing, the time included.
    again = (await client.post(f"/api/v1/customers/{person['id']}/erase", headers=admin)).json()
    assert again["erasedAt"] == erased["erasedAt"]
    r = await client.get(f"/api/v1/customers/{other['id']}", headers=admin)
    assert r.json()["erasedAt"] is None

    db = client.app.state.runtime.db
    script_location = Path(customer_svc.__file__).parent / "migrations"
    await downgrade(db, script_location, BEFORE_ERASED_AT)
    await migrate(db, script_location)
    got = (await client.get(f"/api/v1/customers/{person['id']}", headers=admin)).json()
    assert got["erasedAt"] is not None and got["erasedAt"] == got["updatedAt"]
    assert (await client.get(f"/api/v1/customers/{other['id']}", headers=admin)).json()["erasedAt"] is None
    # Still recognised as erased: a second erasure is the idempotent answer, not a new one.
    r = await client.post(f"/api/v1/customers/{person['id']}/erase", headers=admin)
    assert r.status_code == 202 and r.json()["version"] == got["version"]
