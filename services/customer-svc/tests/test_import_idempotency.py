"""Idempotency-Key on the streamed import: the body is never held back (rows are committed while the
client is still sending), and a retry with the same key and file replays the first report."""

import uuid

from crm_common.testing.plugin import eventually

CSV = {"Content-Type": "text/csv"}


async def _exists(client, headers, email: str) -> bool:
    page = (await client.get("/api/v1/customers", params={"q": email}, headers=headers)).json()
    return any(c["email"] == email for c in page["items"])


async def test_a_keyed_import_streams_and_its_retry_replays_the_report(client, auth_headers):
    h = {**auth_headers(), **CSV, "Idempotency-Key": f"import-{uuid.uuid4()}"}
    run = uuid.uuid4().hex[:6]
    first_batch = "".join(f"{run}-{i}@example.com,N{i}\n" for i in range(600))
    rest = "".join(f"{run}-{i}@example.com,N{i}\n" for i in range(600, 700))

    async def file(wait_for_the_first_batch: bool):
        yield f"email,firstName\n{first_batch}".encode()
        if wait_for_the_first_batch:
            # A middleware holding the body would never let the first batch reach the database.
            seen = await eventually(
                lambda: _exists(client, auth_headers(), f"{run}-0@example.com"), timeout=20
            )
            assert seen, "the first batch was not committed while the file was still being sent"
        yield rest.encode()

    first = await client.post("/api/v1/customers/import", content=file(True), headers=h)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 700

    again = await client.post("/api/v1/customers/import", content=file(False), headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    # The first report, not a second run's ("unchanged": 700).
    assert again.json() == first.json()

    other = await client.post(
        "/api/v1/customers/import", content=b"email,firstName\nsomeone@example.com,S\n", headers=h
    )
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert not await _exists(client, auth_headers(), "someone@example.com")
