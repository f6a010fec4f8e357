"""Customer import: CSV or JSON lines, streamed, upserted by email in batches.

The body is read as it arrives (never whole): bytes -> UTF-8 lines -> records -> validated rows ->
batches of BATCH_SIZE, each applied in its own transaction. A bad row is reported with its line
number and skipped; the valid rows are kept. A file that cannot be read to its end (broken
quoting that never closes, invalid UTF-8, an overlong line) stops there: the rows before it stay
imported and the report says `completed: false`. Re-importing a file is harmless: rows that match
by email and change nothing count as `unchanged`.

Why batches commit one by one instead of one transaction for the whole file: the customer number
counter is a row lock held until commit, and a 100,000-row import must not stop every other create
for a minute; upsert by email makes a retry after a failure idempotent.
"""

import csv
import json
import types
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from crm_common import directory
from crm_common import input_guard as bounded_json
from crm_common.db import Database, dialect_name, insert_for
from crm_common.errors import FieldError
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from crm_common.record_scope import ScopedCaller
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerAddress, CustomerStatus, CustomerType, Priority
from customer_svc.schemas import CustomerImportRow, ImportedRecord, ImportResult, ImportRowError
from customer_svc.service.customers import full_name_of, jsonable, name_errors, next_customer_numbers
from customer_svc.service.errors import ImportEmpty, ImportInvalidHeader

BATCH_SIZE = 500
MAX_RECORD_CHARS = 1_000_000
MAX_ERRORS = 1000
TAG_SEPARATOR = ";"
# A cell the export protected against spreadsheet formula injection ("'=...") gets its value back.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Columns an import sets (camelCase, as in the API and the export).
IMPORT_COLUMNS = tuple(
    to_camel(name)
    for name in CustomerImportRow.model_fields
    if name not in ("addresses", "version")
    and not CustomerImportRow.model_fields[name].exclude  # the read-only fields
)
# Read-only columns of the export: accepted (so an export can be edited and imported back) and ignored.
IGNORED_COLUMNS = (
    "id",
    "customerNumber",
    "fullName",
    "assignedToName",
    "totalValue",
    "lifetimeValue",
    "valueCurrency",
    "lastContactDate",
    "mergedIntoId",
    "createdAt",
    "updatedAt",
)
EDITABLE = tuple(
    n
    for n in CustomerImportRow.model_fields
    if not CustomerImportRow.model_fields[n].exclude and n != "version"
)


class ImportAborted(Exception):
    def __init__(self, line: int, code: str, message: str):
        super().__init__(message)
        self.line, self.code, self.message = line, code, message


def bad_header(
    kind: type[ImportInvalidHeader | ImportEmpty], message: str, columns: list[str]
) -> ImportInvalidHeader | ImportEmpty:
    """The refusal of a whole file, before anything is written: the header is the field at fault,
    and `columns` lists the columns in question when there are any."""
    return kind(
        message,
        errors=[FieldError(field="header", message=message, code=kind.code.lower())],
        extra={"columns": columns} if columns else None,
    )


@dataclass
class Report:
    dry_run: bool
    format: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[ImportRowError] = field(default_factory=list)
    errors_truncated: bool = False
    completed: bool = True
    ignored_columns: list[str] = field(default_factory=list)
    records: list[ImportedRecord] = field(default_factory=list)

    def error(self, line: int, field_: str | None, message: str, code: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ImportRowError(line=line, field=field_, message=message, code=code))
        else:
            self.errors_truncated = True

    def fail(self, line: int, field_: str | None, message: str, code: str) -> None:
        self.failed += 1
        self.error(line, field_, message, code)

    def result(self) -> ImportResult:
        return ImportResult.model_validate(self.__dict__)


# --- reading -------------------------------------------------------------------------------------


async def text_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(line number, line with its newline) from a byte stream, each line decoded as UTF-8 (a BOM is
    dropped). Splitting bytes on newlines is safe: no multi-byte UTF-8 sequence contains one."""
    buffer, number = b"", 0

    def decode(raw: bytes, line: int) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportAborted(line, "invalid_encoding", f"Line {line} is not UTF-8 text.") from None
        return text.removeprefix("\ufeff") if line == 1 else text

    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            if len(buffer) > MAX_RECORD_CHARS:
                raise ImportAborted(
                    number + 1, "line_too_long", f"Line {number + 1} is longer than {MAX_RECORD_CHARS} bytes."
                )
            continue
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            number += 1
            yield number, decode(raw, number) + "\n"
    if buffer:
        yield number + 1, decode(buffer, number + 1)


def _scan_quotes(line: str, in_quotes: bool, at_start: bool) -> tuple[bool, bool]:
    """CSV quoting state after `line`: a quote opens a quoted field only at the start of a field;
    inside one, a doubled quote is a literal quote."""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if in_quotes:
            if ch == '"':
                if i + 1 < n and line[i + 1] == '"':
                    i += 1
                else:
                    in_quotes, at_start = False, False
        elif ch == '"' and at_start:
            in_quotes = True
        elif ch == ",":
            at_start = True
        elif ch in "\r\n":
            at_start = True
        else:
            at_start = False
        i += 1
    return in_quotes, at_start


async def csv_records(lines: AsyncIterator[tuple[int, str]]) -> AsyncIterator[tuple[int, list[str] | str]]:
    """(first line, cells) per CSV record (a quoted field may span lines), or (line, error message)
    for a record the CSV rules reject. Blank lines are skipped."""
    pending: list[str] = []
    start, size, in_quotes = 0, 0, False
    async for number, line in lines:
        if not pending:
            if not line.strip():
                continue
            start, size, in_quotes = number, 0, False
            if '"' not in line:  # the common case: no quoting at all
                yield start, next(csv.reader([line]))
                continue
        pending.append(line)
        size += len(line)
        in_quotes, _ = _scan_quotes(line, in_quotes, len(pending) == 1)
        if in_quotes:
            if size > MAX_RECORD_CHARS:
                raise ImportAborted(
                    start, "unterminated_quote", f"The quoted field opened on line {start} never closes."
                )
            continue
        text = "".join(pending)
        pending = []
        try:
            yield start, next(csv.reader([text], strict=True))
        except csv.Error as exc:
            yield start, f"broken CSV quoting: {exc}"
    if pending:
        raise ImportAborted(
            start, "unterminated_quote", f"The quoted field opened on line {start} never closes."
        )


def check_header(cells: list[str]) -> tuple[list[str], list[str]]:
    """The columns (in order) and the ignored ones; a wrong header is refused (ImportInvalidHeader)."""
    columns = [c.strip() for c in cells]
    unknown = [c for c in columns if c not in IMPORT_COLUMNS and c not in IGNORED_COLUMNS]
    if unknown:
        raise bad_header(
            ImportInvalidHeader,
            f"Unknown column(s) {', '.join(repr(c) for c in unknown)}; importable: {', '.join(IMPORT_COLUMNS)}.",
            unknown,
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise bad_header(ImportInvalidHeader, f"Duplicated column(s): {', '.join(duplicated)}.", duplicated)
    if "email" not in columns:
        raise bad_header(
            ImportInvalidHeader, "The header needs an `email` column (rows match by email).", ["email"]
        )
    return columns, [c for c in columns if c in IGNORED_COLUMNS]


def _cell(value: str) -> str:
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


def csv_row(columns: list[str], cells: list[str]) -> dict[str, Any]:
    """A CSV record as the JSON object an API client would send: empty cells are "not given"."""
    if len(cells) != len(columns):
        raise ValueError(f"expected {len(columns)} fields, found {len(cells)}")
    data: dict[str, Any] = {}
    for column, raw in zip(columns, cells, strict=True):
        if column in IGNORED_COLUMNS or raw == "":
            if column == "mergedIntoId" and raw:
                raise ValueError("a merged customer cannot be imported")
            continue
        value = _cell(raw)
        if column == "tags":
            data[column] = [t.strip() for t in value.split(TAG_SEPARATOR) if t.strip()]
        elif column == "customFields":
            try:
                data[column] = bounded_json.loads(value)
            except bounded_json.JsonTooDeep as exc:
                raise ValueError(f"customFields: {exc}") from None
            except json.JSONDecodeError:
                raise ValueError("customFields must be a JSON object") from None
        else:
            data[column] = value
    return data


# --- applying --------------------------------------------------------------------------------------

_TABLE = Customer.__table__
_ADDRESSES = CustomerAddress.__table__
# Every column of a new customer, with the defaults the model gives them.
_NEW_ROW: dict[str, Any] = {
    **{c.name: None for c in _TABLE.columns},
    "total_value": 0,
    "lifetime_value": 0,
    "value_currency": "USD",
    "value_totals": [],
}
_EXISTING = [
    Customer.__table__.c[name]
    for name in (*EDITABLE, "id", "customer_number", "full_name", "version", "merged_into_id")
    if name != "addresses"
]


def _state(row: Any) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in _EXISTING}


async def _existing(session: AsyncSession, emails: list[str], lock: bool) -> dict[str, dict]:
    query = sa.select(*_EXISTING).where(
        sa.func.lower(Customer.email).in_(emails), Customer.merged_into_id.is_(None)
    )
    if lock:
        query = query.with_for_update()
    return {row.email.lower(): _state(row) for row in await session.execute(query)}


async def _active(session: AsyncSession, table: sa.Table, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    rows = await session.execute(
        sa.select(table.c.id).where(table.c.id.in_(ids), table.c.is_active.is_(True))
    )
    return set(rows.scalars())


def _address_key(a: Any) -> tuple:
    """Comparable (no None against str) and the same for a stored address and a request's."""
    values = (a.type, a.street, a.city, a.state, a.zip_code, a.country)
    return (*("" if v is None else str(v) for v in values), bool(a.is_primary))


async def _address_keys(session: AsyncSession, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple]]:
    found: dict[uuid.UUID, list[tuple]] = {}
    if customer_ids:
        rows = await session.execute(sa.select(_ADDRESSES).where(_ADDRESSES.c.customer_id.in_(customer_ids)))
        for a in rows:
            found.setdefault(a.customer_id, []).append(_address_key(a))
    return {k: sorted(v) for k, v in found.items()}


def _addresses(customer_id: uuid.UUID, row: CustomerImportRow) -> list[dict]:
    return [{"id": uuid.uuid4(), "customer_id": customer_id, **a.model_dump()} for a in row.addresses or []]


class Importer:
    def __init__(self, db: Database, *, caller: ScopedCaller, dry_run: bool, report: Report):
        self.db, self.caller, self.dry_run, self.report = db, caller, dry_run, report
        self.actor_id = caller.id
        # Dry run: what earlier batches would have written, so later rows see it.
        self.overlay: dict[str, dict] = {}

    async def apply(self, batch: list[tuple[int, CustomerImportRow]]) -> None:
        async with self.db.transaction(read_only=self.dry_run) as session:
            await self._apply(session, batch)

    async def _apply(self, session: AsyncSession, batch: list[tuple[int, CustomerImportRow]]) -> None:
        report, now = self.report, datetime.now(UTC)
        postgres = session.bind.dialect.name == "postgresql"
        existing = await _existing(
            session, [r.email.lower() for _, r in batch], lock=postgres and not self.dry_run
        )
        existing.update({k: v for k, v in self.overlay.items() if k in {r.email.lower() for _, r in batch}})
        users = await _active(
            session, directory.users, {r.assigned_to_id for _, r in batch if r.assigned_to_id}
        )
        teams = await _active(session, directory.teams, {r.team_id for _, r in batch if r.team_id})

        addresses = await _address_keys(
            session,
            [c["id"] for c in existing.values() if c["id"]] if any(r.addresses for _, r in batch) else [],
        )
        inserts: list[tuple[int, dict, CustomerImportRow]] = []
        updates: list[tuple[int, dict, dict, CustomerImportRow]] = []
        for line, row in batch:
            current = existing.get(row.email.lower())
            planned = self._plan(line, row, current, users, teams, addresses, now)
            if planned is None:
                continue
            if current is None:
                inserts.append((line, planned, row))
            elif planned:
                updates.append((line, current, planned, row))
            else:
                report.unchanged += 1

        if self.dry_run:
            report.created += len(inserts)
            report.updated += len(updates)
            for _, values, row in inserts:
                self.overlay[row.email.lower()] = {**{c.name: None for c in _EXISTING}, **values}
            for _, current, changes, row in updates:
                self.overlay[row.email.lower()] = {
                    **current,
                    **{k: v for k, v in changes.items() if k != "addresses"},
                }
            return
        out: list[CloudEvent] = []
        await self._insert(session, inserts, now, out)
        await self._update(session, updates, now, out)
        await add_events(session, *out)

    def _plan(
        self,
        line: int,
        row: CustomerImportRow,
        current: dict | None,
        users: set[uuid.UUID],
        teams: set[uuid.UUID],
        addresses: dict[uuid.UUID, list[tuple]],
        now: datetime,
    ) -> dict | None:
        """The new customer's values (current is None) or the changes to make ({} for none); None
        when the row is refused (reported)."""
        report = self.report
        # A row matching a customer the caller may not change is refused like any other bad row.
        if current is not None and not self.caller.can_write(current["assigned_to_id"], current["team_id"]):
            report.fail(line, "email", "a customer outside your write scope has this email", "out_of_scope")
            return None
        # A new assignee or team must be active in the directory; an unchanged one is left alone.
        if (
            row.assigned_to_id
            and row.assigned_to_id not in users
            and (current or {}).get("assigned_to_id") != row.assigned_to_id
        ):
            report.fail(
                line,
                "assignedToId",
                f"user {row.assigned_to_id} does not exist or is not active",
                "unknown_user",
            )
            return None
        if row.team_id and row.team_id not in teams and (current or {}).get("team_id") != row.team_id:
            report.fail(line, "teamId", f"team {row.team_id} does not exist or is not active", "unknown_team")
            return None
        sent = {n: getattr(row, n) for n in row.model_fields_set if n in EDITABLE and n != "addresses"}
        if current is None:
            values = {
                "type": CustomerType.INDIVIDUAL,
                "status": CustomerStatus.LEAD,
                "priority": Priority.MEDIUM,
                "tags": [],
                "custom_fields": {},
                **sent,
            }
            values["assigned_to_id"] = values.get("assigned_to_id") or self.actor_id  # as in create
            if not self.caller.can_write(values["assigned_to_id"], values.get("team_id")):
                report.fail(line, "assignedToId", "outside your write scope", "out_of_scope")
                return None
            state = values
        else:
            values = {k: v for k, v in sent.items() if current.get(k) != v}
            state = {**current, **values}
        names = (state["type"], state.get("first_name"), state.get("last_name"), state.get("company_name"))
        if errors := name_errors(*names):
            report.fail(line, errors[0].field, errors[0].message, errors[0].code)
            return None
        if current is None and state["status"] == CustomerStatus.INACTIVE:
            report.fail(line, "status", "a new customer cannot start INACTIVE", "invalid_status")
            return None
        full_name = full_name_of(*names)
        if current is None:
            values.update(
                id=uuid.uuid4(),
                full_name=full_name,
                created_by_id=self.actor_id,
                created_at=now,
                updated_at=now,
                version=1,
            )
            return values
        if full_name != current["full_name"]:
            values["full_name"] = full_name
        if row.addresses is not None and sorted(map(_address_key, row.addresses)) != addresses.get(
            current["id"], []
        ):
            values["addresses"] = row.addresses
        return values

    async def _insert(
        self, session: AsyncSession, inserts: list, now: datetime, out: list[CloudEvent]
    ) -> None:
        if not inserts:
            return
        numbers = await next_customer_numbers(session, now.year, len(inserts))
        rows = []
        for (_, values, _), number in zip(inserts, numbers, strict=True):
            row = dict(_NEW_ROW)
            row.update(values, customer_number=number)
            rows.append(row)
        stmt = insert_for(session, _TABLE)
        if dialect_name(session) == "postgresql":
            stmt = stmt.on_conflict_do_nothing(
                index_elements=[sa.text("lower(email)")], index_where=sa.text("merged_into_id IS NULL")
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        inserted = set((await session.execute(stmt.returning(_TABLE.c.id), rows)).scalars())
        addresses = []
        for (line, _, row_in), row in zip(inserts, rows, strict=True):
            if row["id"] not in inserted:
                # Created by someone else since this batch looked: import the row again to update it.
                self.report.fail(
                    line,
                    "email",
                    "a customer with this email was created meanwhile; import the row again",
                    "email_taken",
                )
                continue
            self.report.created += 1
            self.report.records.append(ImportedRecord(line=line, id=row["id"], outcome="CREATED"))
            addresses += _addresses(row["id"], row_in)
            out.append(publish.customer_created(types.SimpleNamespace(**row)))
        if addresses:
            await session.execute(sa.insert(_ADDRESSES), addresses)

    async def _update(
        self, session: AsyncSession, updates: list, now: datetime, out: list[CloudEvent]
    ) -> None:
        """One executemany per set of changed columns; the rows are locked (Postgres) since they were
        read, so the version read is the version written over."""
        if not updates:
            return
        groups: dict[tuple[str, ...], list[dict]] = {}
        replaced: list[uuid.UUID] = []
        addresses: list[dict] = []
        for line, current, changes, row in updates:
            self.report.records.append(ImportedRecord(line=line, id=current["id"], outcome="UPDATED"))
            columns = {k: v for k, v in changes.items() if k != "addresses"}
            version = current["version"] + 1
            groups.setdefault(tuple(sorted(columns)), []).append(
                {
                    **{f"v_{k}": v for k, v in columns.items()},
                    "b_id": current["id"],
                    "b_version": current["version"],
                }
            )
            if "addresses" in changes:
                replaced.append(current["id"])
                addresses += _addresses(current["id"], row)
            event_changes = {to_camel(k): jsonable(v) for k, v in columns.items()}
            if "addresses" in changes:
                event_changes["addresses"] = [
                    jsonable(a.model_dump(by_alias=True)) for a in row.addresses or []
                ]
            state = types.SimpleNamespace(**{**current, **columns, "version": version})
            out.append(publish.customer_updated(state, event_changes, self.actor_id))
            self.report.updated += 1
        for columns, params in groups.items():
            await session.execute(
                sa.update(_TABLE)
                .where(_TABLE.c.id == sa.bindparam("b_id"), _TABLE.c.version == sa.bindparam("b_version"))
                .values(
                    {
                        **{c: sa.bindparam(f"v_{c}", type_=_TABLE.c[c].type) for c in columns},
                        "updated_at": now,
                        "version": _TABLE.c.version + 1,
                    }
                ),
                params,
            )
        if replaced:
            await session.execute(sa.delete(_ADDRESSES).where(_ADDRESSES.c.customer_id.in_(replaced)))
        if addresses:
            await session.execute(sa.insert(_ADDRESSES), addresses)


# --- the whole import ----------------------------------------------------------------------------------


async def _rows(
    fmt: str, lines: AsyncIterator[tuple[int, str]], report: Report
) -> AsyncIterator[tuple[int, dict | str]]:
    """(line, JSON object) per data row, or (line, error message) for a row that is not one."""
    if fmt == "csv":
        records = csv_records(lines)
        header = None
        async for line, cells in records:
            if header is None:
                if isinstance(cells, str):
                    raise bad_header(ImportInvalidHeader, f"The header line is not valid CSV: {cells}", [])
                header, report.ignored_columns = check_header(cells)
                continue
            if isinstance(cells, str):
                yield line, cells
                continue
            try:
                yield line, csv_row(header, cells)
            except ValueError as exc:
                yield line, str(exc)
        if header is None:
            raise bad_header(ImportEmpty, "The file is empty: a CSV import needs a header line.", [])
        return
    async for line, text in lines:
        if not text.strip():
            continue
        try:
            data = bounded_json.loads(text)
        except bounded_json.JsonTooDeep as exc:
            yield line, str(exc)
            continue
        except json.JSONDecodeError as exc:
            yield line, f"not valid JSON: {exc.msg}"
            continue
        yield line, data if isinstance(data, dict) else "each line must be a JSON object"


async def run_import(
    db: Database, chunks: AsyncIterator[bytes], *, fmt: str, dry_run: bool, caller: ScopedCaller
) -> Report:
    """Refuses a bad header or an empty file (ImportInvalidHeader, ImportEmpty) before anything is
    written; everything else is in the report."""
    report = Report(dry_run=dry_run, format=fmt)
    importer = Importer(db, caller=caller, dry_run=dry_run, report=report)
    batch: list[tuple[int, CustomerImportRow]] = []
    emails: set[str] = set()
    try:
        async for line, data in _rows(fmt, text_lines(chunks), report):
            report.rows += 1
            if isinstance(data, str):
                report.fail(line, None, data, "invalid_row")
                continue
            try:
                row = CustomerImportRow.model_validate(data)
            except ValidationError as exc:
                report.failed += 1
                for e in exc.errors():
                    report.error(line, ".".join(str(p) for p in e["loc"]) or None, e["msg"], e["type"])
                continue
            email = row.email.lower()
            if email in emails or len(batch) >= BATCH_SIZE:
                # A file may mention one email twice: the second row then updates what the first made.
                await importer.apply(batch)
                batch, emails = [], set()
            batch.append((line, row))
            emails.add(email)
    except ImportAborted as exc:
        report.completed = False
        report.error(exc.line, None, exc.message, exc.code)
    if batch:
        await importer.apply(batch)
    if fmt == "jsonl" and report.rows == 0 and report.completed:
        raise bad_header(ImportEmpty, "The file has no rows.", [])
    report.records.sort(key=lambda r: r.line)  # a batch writes its creations before its updates
    return report
