"""`crm backup` under write load and `crm restore`: one consistent instant for every service's file,
nothing acknowledged before the backup missing after the restore, every event either applied or
delivered again; and `crm up` refuses a damaged database."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway import backup
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login


def crm_command(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def embedded(data_dir: Path):
    settings = GatewaySettings(data_dir=data_dir, admin_password=PASSWORD, admin_email=ADMIN)
    return create_embedded_app(settings, only=("customer", "activity"))


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def customer_ids(data_dir: Path) -> set[str]:
    return {uuid.UUID(r[0]).hex for r in rows(data_dir / "customer.db", "SELECT id FROM customers")}


def notes_per_customer(data_dir: Path) -> dict[str, int]:
    found = rows(
        data_dir / "activity.db",
        "SELECT customer_id, count(*) FROM activities WHERE subject = 'Customer created' GROUP BY customer_id",
    )
    return {uuid.UUID(c).hex: n for c, n in found}


@pytest.fixture
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)


async def test_a_backup_under_write_load_restores_every_acknowledged_write_consistently(tmp_path, clean_env):
    data_dir, dest = tmp_path / "data", tmp_path / "backup"
    acknowledged: list[tuple[float, str]] = []
    stop = asyncio.Event()

    async def write_load(client, worker):
        n = 0
        while not stop.is_set():
            n += 1
            r = await client.post(
                "/api/v1/customers",
                json={"firstName": "Load", "lastName": f"{worker}-{n}", "email": f"l{worker}-{n}@x.org"},
            )
            assert r.status_code == 201, r.text
            acknowledged.append((time.monotonic(), uuid.UUID(r.json()["id"]).hex))

    app = embedded(data_dir)
    async with running(app) as client:
        client.headers.update(await login(client))
        writers = [asyncio.create_task(write_load(client, w)) for w in range(3)]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        # In a thread: the CRM (this event loop) goes on writing while the copy is made.
        result = await asyncio.to_thread(backup.backup, data_dir, dest)
        finished = time.monotonic()

        async def written_after_the_backup():
            return any(t > finished for t, _ in acknowledged)

        assert await eventually(written_after_the_backup, timeout=30)
        stop.set()
        await asyncio.gather(*writers)
    # Writes wait only while the locks are taken (transactions under way finish first), not during
    # the copy; generous for a loaded machine.
    assert result.paused_ms < 10_000
    before = {cid for t, cid in acknowledged if t < started}
    during_or_after = {cid for t, cid in acknowledged if t >= started}
    assert before, "the load ran before the backup"

    manifest = json.loads((dest / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} >= {
        "gateway.db",
        "customer.db",
        "activity.db",
        "jwt-private.pem",
        "jwt-public.pem",
    }
    for entry in manifest["files"]:
        assert (dest / entry["name"]).stat().st_size == entry["bytes"]
        if entry["name"].endswith(".db"):
            assert entry["integrity"] == "ok" and entry["schemaHead"]
    assert manifest["crmVersion"] and manifest["createdAt"]

    # Restore over the data folder the CRM went on writing to.
    restored = crm_command(data_dir, "restore", str(dest))
    assert restored.returncode == 0, restored.stderr
    for name in ("gateway", "customer", "activity"):
        assert rows(data_dir / f"{name}.db", "PRAGMA integrity_check") == [("ok",)]
    ids = customer_ids(data_dir)
    # Everything acknowledged before the backup began is there; nothing that was never written is.
    assert before <= ids <= before | during_or_after
    assert len(ids) < len(acknowledged)
    # One instant for every file: a customer's note is there, or its event is still PENDING.
    notes = notes_per_customer(data_dir)
    assert set(notes) <= ids and all(n == 1 for n in notes.values())

    app = embedded(data_dir)
    async with running(app) as client:
        client.headers.update(await login(client))
        listed = (await client.get("/api/v1/customers", params={"pageSize": 1})).json()
        assert listed["total"] == len(ids)

        async def every_note():
            found = notes_per_customer(data_dir)
            return len(found) == len(ids) and found

        assert await eventually(every_note, timeout=60) == dict.fromkeys(ids, 1)


async def test_restore_refuses_a_running_crm_and_a_changed_backup(tmp_path, clean_env):
    data_dir, dest = tmp_path / "data", tmp_path / "backup"
    app = embedded(data_dir)
    async with running(app):
        pass
    backup.backup(data_dir, dest)
    (data_dir / "crm.pid").write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(backup.BackupError, match="is running from"):
        backup.restore(dest, data_dir)
    (data_dir / "crm.pid").unlink()

    with (dest / "activity.db").open("r+b") as f:
        f.seek(5000)
        f.write(b"\xff" * 64)
    with pytest.raises(backup.BackupError, match="differs from the manifest"):
        backup.restore(dest, data_dir)
    with pytest.raises(backup.BackupError, match="already exists"):
        backup.backup(data_dir, dest)


def test_crm_up_refuses_a_damaged_database_in_one_line(tmp_path, clean_env):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    conn = sqlite3.connect(data_dir / "activity.db")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 200)
    conn.commit()
    conn.close()
    with (data_dir / "activity.db").open("r+b") as f:
        f.seek(4096)  # the table's pages, headers included
        f.write(os.urandom(3 * 4096))
    with pytest.raises(backup.BackupError, match=r"activity\.db is damaged"):
        backup.check_databases(data_dir)

    up = crm_command(data_dir, "up", "--port", "1")
    assert up.returncode != 0
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1 and "activity.db is damaged" in lines[0], up.stderr
    assert "Traceback" not in up.stderr
