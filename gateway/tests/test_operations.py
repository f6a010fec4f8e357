"""Small operational guarantees: a graceful stop drains the outbox, a changed CRM_ADMIN_PASSWORD is
reported (and `crm admin reset-password` sets one), the first admin's password follows the password
rule, an unusable data folder is one line."""

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from crm_common.events.relay import OutboxRelay
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity.service import AdminPasswordRefused
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login


@pytest.fixture
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)


def crm_command(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def embedded(data_dir: Path, password=PASSWORD, only=("customer", "activity")):
    settings = GatewaySettings(data_dir=data_dir, admin_password=password, admin_email=ADMIN)
    return create_embedded_app(settings, only=only)


async def test_a_graceful_stop_sends_what_the_outbox_still_holds(tmp_path, clean_env, monkeypatch):
    # A relay that is never woken and polls once an hour: the event is still PENDING at the stop.
    monkeypatch.setenv("CRM_RELAY_POLL_INTERVAL", "3600")
    monkeypatch.setattr(OutboxRelay, "wake", lambda self: None)
    # The stop's budget is the product's to choose; here it only has to outlast a busy disk (a CI
    # run saw the default 5 s pass before two events had gone out). A stop that never drains fails.
    monkeypatch.setenv("CRM_OUTBOX_DRAIN_SECONDS", "60")
    app = embedded(tmp_path)
    async with running(app) as client:
        client.headers.update(await login(client))
        r = await client.post(
            "/api/v1/customers", json={"firstName": "Ada", "lastName": "L", "email": "a@x.org"}
        )
        assert r.status_code == 201, r.text
        notes = await client.get("/api/v1/activities")
        assert notes.json()["total"] == 0
    conn = sqlite3.connect(tmp_path / "activity.db")
    try:
        subjects = [row[0] for row in conn.execute("SELECT subject FROM activities")]
    finally:
        conn.close()
    assert subjects == ["Customer created"]
    conn = sqlite3.connect(tmp_path / "customer.db")
    try:
        assert conn.execute("SELECT state FROM event_outbox").fetchall() == [("PUBLISHED",)]
    finally:
        conn.close()


async def test_a_changed_admin_password_is_reported_and_reset_password_sets_one(tmp_path, clean_env, caplog):
    async with running(embedded(tmp_path, only=())):
        pass
    with caplog.at_level(logging.WARNING, logger="crm.gateway.identity"):
        async with running(embedded(tmp_path, password="another-password", only=())) as client:
            refused = await client.post(
                "/api/v1/auth/token", data={"username": ADMIN, "password": "another-password"}
            )
            assert refused.status_code == 400
    (warning,) = [r.getMessage() for r in caplog.records if "CRM_ADMIN_PASSWORD" in r.getMessage()]
    assert f"crm admin reset-password {ADMIN}" in warning and "another-password" not in warning

    reset = crm_command(tmp_path, "admin", "reset-password", ADMIN, stdin="another-password\n")
    assert reset.returncode == 0, reset.stderr
    assert f"Password of {ADMIN} changed." in reset.stdout
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crm.gateway.identity"):
        async with running(embedded(tmp_path, password="another-password", only=())) as client:
            await login(client, password="another-password")
    assert "CRM_ADMIN_PASSWORD" not in caplog.text

    unknown = crm_command(tmp_path, "admin", "reset-password", "nobody@example.com", stdin="whatever-123\n")
    assert unknown.returncode == 1 and "no user nobody@example.com" in unknown.stderr


def test_an_unusable_data_folder_is_one_line_not_a_traceback(tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("I am a file")
    for command in (["up", "--port", "1"], ["events", "dlq", "list"]):
        result = crm_command(not_a_folder, *command)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"the data folder {not_a_folder} cannot be used: it is a file, not a folder" in lines[0]


async def test_a_first_admin_password_follows_the_password_rule(tmp_path, clean_env):
    for weak, reason in [("short", "shorter than 10 characters"), (ADMIN, "the user's email")]:
        with pytest.raises(AdminPasswordRefused) as refused:
            async with running(embedded(tmp_path, password=weak, only=())):
                pass
        assert "CRM_ADMIN_PASSWORD" in str(refused.value) and reason in str(refused.value)
    # Nothing was created: a start with an acceptable password makes the admin.
    async with running(embedded(tmp_path, only=())) as client:
        await login(client)
    # Once there are users the setting is not used, so a weak one stops nothing (it is reported).
    async with running(embedded(tmp_path, password="short", only=())) as client:
        await login(client)

    weak = crm_command(tmp_path, "admin", "reset-password", ADMIN, stdin="aaaaaaaaaaaa\n")
    assert weak.returncode == 1 and "one character repeated" in weak.stderr, weak.stderr
    async with running(embedded(tmp_path, only=())) as client:
        await login(client)  # unchanged
