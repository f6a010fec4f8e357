"""webhook-svc's part of a person's GDPR art. 15 export: the deliveries that mention the customer,
with their attempts; admin only."""

import uuid

from crm_common.testing.plugin import eventually

from .conftest import World, customer_created

PATH = "/internal/customers/{}/personal-data"


async def test_the_deliveries_mentioning_a_customer_with_their_attempts(world: World, receiver, auth_headers):
    await world.subscribe(receiver.url, ["customer.*"])
    person, other = uuid.uuid4(), uuid.uuid4()
    await world.publish(
        customer_created("Ann Person", customer_id=person), customer_created("Bo Other", customer_id=other)
    )
    await receiver.wait_for(2)

    async def export():
        r = await world.client.get(PATH.format(person), headers=world.admin)
        assert r.status_code == 200, r.text
        return r.json()["deliveries"]

    async def attempted():
        found = await export()
        return found if found and found[0]["attempts"] else None

    (delivery,) = await eventually(attempted)
    assert delivery["payload"]["data"]["fullName"] == "Ann Person"
    assert delivery["attempts"][0]["statusCode"] == 200

    r = await world.client.get(PATH.format(uuid.uuid4()), headers=world.admin)
    assert r.json() == {"deliveries": []}
    r = await world.client.get(PATH.format(person), headers=auth_headers("sales_rep"))
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
