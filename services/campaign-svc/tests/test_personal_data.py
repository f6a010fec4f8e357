"""campaign-svc's part of a person's GDPR art. 15 export: every membership of the customer with the
campaign's name and the funnel dates, the leads and conversions; admin only."""

import uuid

from .conftest import create_campaign, with_targets

PATH = "/internal/customers/{}/personal-data"


async def test_a_customers_memberships_with_their_campaigns(client, headers, auth_headers):
    spring = await create_campaign(client, headers, name="Spring launch")
    autumn = await create_campaign(client, headers, name="Autumn mailing")
    (person,) = await with_targets(client, headers, spring["id"], n=1)
    await with_targets(client, headers, autumn["id"], n=2)  # other people
    r = await client.post(
        f"/api/v1/campaigns/{autumn['id']}/targets", json={"customerIds": [str(person)]}, headers=headers
    )
    assert r.status_code == 200, r.text

    admin = auth_headers("admin")
    r = await client.get(PATH.format(person), headers=admin)
    assert r.status_code == 200, r.text
    doc = r.json()
    memberships = doc["memberships"]
    assert [m["campaignName"] for m in memberships] == ["Spring launch", "Autumn mailing"]
    assert {m["customerId"] for m in memberships} == {str(person)}
    assert memberships[0]["status"] == "TARGETED" and memberships[0]["addedAt"]
    assert doc["interactions"] == [] and doc["leads"] == [] and doc["conversions"] == []

    assert (await client.get(PATH.format(uuid.uuid4()), headers=admin)).json()["memberships"] == []
    r = await client.get(PATH.format(person), headers=headers)  # a marketer is no admin
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
