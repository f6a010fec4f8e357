"""Customer export: CSV with the list's search, filters and sort, streamed row by row from a
server-side cursor (never the whole result in memory)."""

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

from crm_common import directory
from crm_common.db import Database
from crm_common.record_scope import ScopedCaller

from customer_svc.schemas import SegmentFilter
from customer_svc.service.importer import TAG_SEPARATOR
from customer_svc.service.query import customer_select

EXPORT_COLUMNS = (
    "id",
    "customerNumber",
    "type",
    "firstName",
    "lastName",
    "fullName",
    "title",
    "companyName",
    "industry",
    "employeeCount",
    "annualRevenue",
    "email",
    "phone",
    "mobile",
    "website",
    "status",
    "priority",
    "source",
    "sourceCampaignId",
    "tags",
    "assignedToId",
    "assignedToName",
    "teamId",
    "totalValue",
    "lifetimeValue",
    "valueCurrency",
    "lastContactDate",
    "nextContactDate",
    "customFields",
    "notes",
    "mergedIntoId",
    "createdAt",
    "updatedAt",
)
_ATTRS = [re.sub(r"(?<!^)([A-Z])", r"_\1", c).lower() for c in EXPORT_COLUMNS]
CHUNK = 1000
# A cell a spreadsheet would run as a formula gets a leading apostrophe (the import removes it);
# plain numbers such as phone numbers ("+44 20 ...") cannot be formulas and stay as they are.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBERISH = re.compile(r"^[+\-]?[\d\s().\-/]*$")


def _text(value) -> str:
    return _defused(_plain(value))


def _plain(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return TAG_SEPARATOR.join(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def _defused(text: str) -> str:
    # Checked on the cell as written, whatever the field: joined tags (`=HYPERLINK(...);vip`) went out
    # raw when only scalar fields were checked.
    if _FORMULA.match(text) and not _NUMBERISH.match(text):
        return "'" + text
    return text


async def export_csv(
    db: Database,
    *,
    caller: ScopedCaller,
    q: str | None,
    f: SegmentFilter,
    sort: str | None,
    include_merged: bool,
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> bytes:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return data

    writer.writerow(EXPORT_COLUMNS)
    yield b"\xef\xbb\xbf" + flush()  # a BOM, so spreadsheets read UTF-8
    async with db.transaction(read_only=True) as session:
        query = customer_select(
            session, caller=caller, q=q, f=f, sort=sort, exclude_merged=not include_merged
        )
        result = await session.stream_scalars(query.execution_options(yield_per=CHUNK))
        async for customers in result.partitions(CHUNK):
            names = await directory.user_names(session, (c.assigned_to_id for c in customers))
            for c in customers:
                values = [getattr(c, a, None) for a in _ATTRS]
                values[EXPORT_COLUMNS.index("assignedToName")] = names.get(c.assigned_to_id)
                writer.writerow([_text(v) for v in values])
            yield flush()
            session.expunge_all()
