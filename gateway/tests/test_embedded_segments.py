"""In the embedded default, campaign-svc asks customer-svc for a segment's members in process: it
works without the CRM listening on any port (it used to call http://127.0.0.1:8000 and answer 503
CUSTOMER_SERVICE_UNAVAILABLE when nothing was there, as under the in-process API fuzzer)."""

from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery staple"


async def test_targets_from_a_segment_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_PORT", "9")  # nothing listens there
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email="boss@example.com")
    async with running(create_embedded_app(settings)) as c:
        r = await c.post("/api/v1/auth/token", data={"username": "boss@example.com", "password": PASSWORD})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        lead = await c.post("/api/v1/customers", json={"firstName": "L", "email": "l@example.com"}, headers=h)
        assert lead.status_code == 201, lead.text
        segment = await c.post(
            "/api/v1/segments", json={"name": "Leads", "filter": {"status": ["LEAD"]}}, headers=h
        )
        assert segment.status_code == 201, segment.text
        campaign = await c.post("/api/v1/campaigns", json={"name": "Spring", "type": "EMAIL"}, headers=h)
        r = await c.post(
            f"/api/v1/campaigns/{campaign.json()['id']}/targets/from-segment",
            json={"segmentId": segment.json()["id"]},
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert r.json()["added"] == [lead.json()["id"]]
