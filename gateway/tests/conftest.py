import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery staple"
ADMIN = "boss@example.com"


async def login(client, username=ADMIN, password=PASSWORD) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
async def identity_gateway(database, tmp_path):
    """The gateway alone (no services), on SQLite and on Postgres."""
    url, schema = database
    settings = GatewaySettings(
        data_dir=tmp_path,
        admin_password=PASSWORD,
        admin_email=ADMIN,
        database_url=url if url.startswith("postgres") else None,
        db_schema=schema if url.startswith("postgres") else "identity",
    )
    async with running(create_embedded_app(settings, only=())) as client:
        yield client
