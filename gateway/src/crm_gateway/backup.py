"""`crm backup DEST` and `crm restore SRC` for the embedded default, and the start-up check of the
SQLite files.

Consistency: one instant for every file. The backup takes the write lock of every service's file
(BEGIN IMMEDIATE, the lock every writer takes first), so no commit can happen anywhere; while holding
them all it opens a read transaction on each file, which pins that file's snapshot (WAL mode); then it
releases the write locks. Writes are paused only for those few milliseconds: the copies themselves
(SQLite's online backup API, `sqlite3.Connection.backup`, one step) are read from the pinned
snapshots while the CRM goes on writing. Because a producer marks an outbox row PUBLISHED only after
every consumer committed the event's effects (or its dead letter), a cut where no commit is under way
never holds a published event without its effects: after a restore, an event is either applied or
still PENDING in its outbox (and delivered again, the inbox absorbing any duplicate).

A backup is a folder: one SQLite file per service (in rollback-journal mode, self-contained), the
token signing key pair, and `manifest.json` (files, sizes, SHA-256, schema heads, time, version).
"""

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from crm_gateway import runfile
from crm_gateway.settings import SERVICES

# The gateway's and every service's (webhook-svc's queue of deliveries included).
DATABASES = ("gateway", *SERVICES)
KEY_FILES = ("jwt-private.pem", "jwt-public.pem")
MANIFEST = "manifest.json"
FORMAT = 1
LOCK_TIMEOUT_SECONDS = 30.0


class BackupError(Exception):
    """What went wrong, in one line for the operator."""


@dataclass
class Result:
    path: Path
    files: list[dict[str, Any]]
    paused_ms: float


def _version() -> str:
    try:
        return metadata.version("crm-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}")
    return conn


def _schema_head(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _check(conn: sqlite3.Connection, pragma: str = "quick_check") -> str:
    """'ok', or the first problem SQLite reports."""
    try:
        rows = conn.execute(f"PRAGMA {pragma}").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    first = rows[0][0] if rows else "no answer"
    return "ok" if first == "ok" else f"{first}" + (f" (and {len(rows) - 1} more)" if len(rows) > 1 else "")


def database_files(data_dir: Path) -> dict[str, Path]:
    return {name: data_dir / f"{name}.db" for name in DATABASES if (data_dir / f"{name}.db").exists()}


def backup(data_dir: Path, dest: Path) -> Result:
    files = database_files(data_dir)
    if not files:
        raise BackupError(f"no CRM databases in {data_dir} (nothing to back up)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} already exists and is not an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    taken_at = datetime.now(UTC)
    writers = {name: _connect(path) for name, path in files.items()}
    readers = {name: _connect(path) for name, path in files.items()}
    try:
        # Writes paused: every file's write lock, always in the same order.
        started = time.monotonic()
        try:
            for conn in writers.values():
                conn.execute("BEGIN IMMEDIATE")
            for conn in readers.values():
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # pins the snapshot
        finally:
            for conn in writers.values():
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        paused_ms = (time.monotonic() - started) * 1000
        entries = []
        for name, reader in readers.items():
            target_path = dest / f"{name}.db"
            target = sqlite3.connect(target_path, isolation_level=None)
            try:
                reader.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
                integrity = _check(target, "integrity_check")
                head = _schema_head(target)
            finally:
                target.close()
            if integrity != "ok":
                raise BackupError(f"the copy of {name}.db fails its integrity check: {integrity}")
            entries.append(
                {
                    "name": target_path.name,
                    "service": name,
                    "bytes": target_path.stat().st_size,
                    "sha256": _sha256(target_path),
                    "schemaHead": head,
                    "integrity": integrity,
                }
            )
    finally:
        for conn in [*readers.values(), *writers.values()]:
            conn.close()
    for key in KEY_FILES:
        source = data_dir / key
        if source.exists():
            shutil.copy2(source, dest / key)
            entries.append({"name": key, "bytes": source.stat().st_size, "sha256": _sha256(dest / key)})
    manifest = {
        "format": FORMAT,
        "createdAt": taken_at.isoformat(),
        "crmVersion": _version(),
        "sqliteVersion": sqlite3.sqlite_version,
        "source": str(data_dir.resolve()),
        "consistency": "writes to every file paused while each file's snapshot was pinned; copies "
        "made with SQLite's online backup API from those snapshots",
        "writesPausedMs": round(paused_ms, 1),
        "files": entries,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Result(dest, entries, paused_ms)


def _known_revisions(service: str) -> set[str] | None:
    """Alembic revisions this release knows for `service` (None if they cannot be read)."""
    try:
        import importlib.resources

        from alembic.script import ScriptDirectory

        package = "crm_gateway" if service == "gateway" else f"{service}_svc"
        location = importlib.resources.files(package) / "migrations"
        return {rev.revision for rev in ScriptDirectory(str(location)).walk_revisions()}
    except Exception:
        return None


def verify(src: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is there, unchanged, intact and not from the future."""
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} is not a CRM backup (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r}")
    if not any(f.get("service") for f in manifest.get("files", [])):
        raise BackupError(f"{path} lists no database")
    for entry in manifest["files"]:
        file = src / entry["name"]
        if not file.is_file():
            raise BackupError(f"{file} is missing")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise BackupError(f"{file} differs from the manifest (size or SHA-256): changed since the backup")
        if "service" not in entry:
            continue
        conn = _connect(file, readonly=True)
        try:
            integrity = _check(conn, "integrity_check")
        finally:
            conn.close()
        if integrity != "ok":
            raise BackupError(f"{file} fails its integrity check: {integrity}")
        known = _known_revisions(entry["service"])
        if entry.get("schemaHead") and known is not None and entry["schemaHead"] not in known:
            raise BackupError(
                f"{file} has schema {entry['schemaHead']}, unknown to this release: "
                "it comes from a newer CRM; restore it with that version"
            )
    return manifest


def restore(src: Path, data_dir: Path) -> Path | None:
    """Copy a verified backup into `data_dir`. The files it replaces (with their WAL and shared-memory
    files) are moved to `data_dir/pre-restore-<time>/`, whose path is returned (None if none)."""
    if (pid := runfile.running_pid(data_dir)) is not None:
        raise BackupError(f"a CRM (process {pid}) is running from {data_dir}; stop it first (crm down)")
    manifest = verify(src)
    data_dir.mkdir(parents=True, exist_ok=True)
    aside = data_dir / f"pre-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    moved = False
    replaced = [e["name"] for e in manifest["files"]]
    for name in DATABASES:
        # Every database file goes aside, restored or not: a file the backup lacks must not be mixed
        # with the others' older state, and a leftover -wal would be replayed into the restored file.
        replaced.append(f"{name}.db")
    for name in dict.fromkeys(replaced):
        for suffix in ("", "-wal", "-shm", "-journal"):
            current = data_dir / f"{name}{suffix}"
            if current.exists():
                aside.mkdir(exist_ok=True)
                os.replace(current, aside / current.name)
                moved = True
    for entry in manifest["files"]:
        temp = data_dir / f".{entry['name']}.restoring"
        shutil.copy2(src / entry["name"], temp)
        os.replace(temp, data_dir / entry["name"])
    return aside if moved else None


def check_databases(data_dir: Path) -> None:
    """At start: refuse to serve a database SQLite finds damaged (`PRAGMA quick_check`)."""
    for path in database_files(data_dir).values():
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise BackupError(f"{path} cannot be opened ({exc})") from None
        try:
            result = _check(conn)
        finally:
            conn.close()
        if result != "ok":
            raise BackupError(
                f"{path} is damaged ({result}); the CRM will not serve it. Restore a backup "
                "(crm restore, docs/operations.md) or move the file away"
            )
