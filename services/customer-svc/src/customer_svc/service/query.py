"""Building customer queries: text search, the filters shared by the list, the export and segments,
and the list view's sorts. The dialect switch for JSON conditions lives here, in one place."""

from collections.abc import Sequence
from functools import cache

import sqlalchemy as sa
from crm_common import directory
from crm_common.archive import ArchivedMode, archived_clause
from crm_common.db import sqlite_has_trigram_search
from crm_common.errors import FieldError
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.models import Customer, CustomerAddress
from customer_svc.schemas import SegmentFilter
from customer_svc.service.errors import InvalidSort


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_text(session: AsyncSession) -> sa.ColumnElement[str]:
    """The text `q` searches: number, name, email and company, lower-cased, joined by a control
    character no query contains (so a match never spans two fields). On Postgres one trigram GIN
    index is built on exactly this expression (see the migration); there are no per-column trigram
    indexes, which the planner would also pick for `lower(email) = ...` and make those slow."""
    return _search_text(session.bind.dialect.name)


@cache
def _search_text(dialect: str) -> sa.ColumnElement[str]:
    # Built once per dialect: composing the expression cost more CPU than the list's SQL round trip.
    sep = sa.literal_column("chr(31)" if dialect == "postgresql" else "char(31)")
    empty = sa.literal_column("''")
    c = Customer
    return sa.func.lower(
        c.customer_number + sep + c.full_name + sep + c.email + sep + sa.func.coalesce(c.company_name, empty)
    )


# SQLite's trigram index of the same text (migration c2f4a8e1b9d7), where FTS5 has the tokenizer.
_SEARCH_INDEX = sa.table("customer_search", sa.column("rowid"), sa.column("customer_search"))
_CUSTOMER_ROWID = sa.literal_column("customers.rowid")


def search_condition(session: AsyncSession, q: str) -> sa.ColumnElement[bool]:
    """`q`: a case-insensitive substring of the number, name, email or company.

    On SQLite a term of 3 or more characters first asks the trigram index for candidates (a phrase
    of trigrams: the term as a substring, folded as FTS5 folds case, which takes in every row the
    LIKE below matches, and perhaps a few more with non-ASCII letters), then the LIKE decides, so
    the answer is the same with or without the index. Postgres' trigram index serves the LIKE
    itself."""
    term = q.strip().lower()
    matches = search_text(session).like(f"%{_escape_like(term)}%", escape="\\")
    if len(term) < 3 or session.bind.dialect.name != "sqlite" or not sqlite_has_trigram_search():
        return matches
    phrase = '"' + term.replace('"', '""') + '"'
    candidates = sa.select(_SEARCH_INDEX.c.rowid).where(_SEARCH_INDEX.c.customer_search.op("MATCH")(phrase))
    return sa.and_(_CUSTOMER_ROWID.in_(candidates), matches)


async def compact_search_index(session: AsyncSession) -> None:
    """After an erasure (SQLite): FTS5 keeps a changed row's old trigrams in its index until its
    segments are merged; merging them all now leaves nothing of the erased text behind."""
    if session.bind.dialect.name == "sqlite" and sqlite_has_trigram_search():
        await session.execute(sa.text("INSERT INTO customer_search (customer_search) VALUES ('optimize')"))


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def _tags_any(session: AsyncSession, tags: Sequence[str]) -> sa.ColumnElement[bool]:
    if _is_postgres(session):
        return Customer.tags.op("?|")(postgresql.array(list(tags), type_=sa.Text))
    each = sa.func.json_each(Customer.tags).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value.in_(list(tags))))


def _tags_all(session: AsyncSession, tags: Sequence[str]) -> sa.ColumnElement[bool]:
    if _is_postgres(session):
        return Customer.tags.op("?&")(postgresql.array(list(tags), type_=sa.Text))
    return sa.and_(*(_tags_any(session, [t]) for t in tags))


def _custom_fields_equal(session: AsyncSession, wanted: dict) -> sa.ColumnElement[bool]:
    if _is_postgres(session):
        # One containment test, served by the jsonb_path_ops GIN index.
        return Customer.custom_fields.op("@>")(sa.bindparam(None, wanted, type_=postgresql.JSONB))
    conditions = []
    for key, value in wanted.items():
        path = f'$."{key}"'
        extracted = sa.func.json_extract(Customer.custom_fields, path)
        kind = sa.func.json_type(Customer.custom_fields, path)
        if isinstance(value, bool):
            conditions.append(kind == ("true" if value else "false"))
        elif isinstance(value, int | float):
            conditions.append(sa.and_(kind.in_(("integer", "real")), extracted == value))
        else:
            conditions.append(sa.and_(kind == "text", extracted == value))
    return sa.and_(*conditions)


def filter_conditions(session: AsyncSession, f: SegmentFilter) -> list[sa.ColumnElement[bool]]:
    c = Customer
    where: list[sa.ColumnElement[bool]] = []
    if f.status:
        where.append(c.status.in_(f.status))
    if f.type:
        where.append(c.type.in_(f.type))
    if f.priority:
        where.append(c.priority.in_(f.priority))
    if f.industry:
        where.append(sa.func.lower(c.industry).in_([i.lower() for i in f.industry]))
    if f.source:
        where.append(sa.func.lower(c.source).in_([s.lower() for s in f.source]))
    if f.tags:
        where.append(_tags_any(session, f.tags))
    if f.tags_all:
        where.append(_tags_all(session, f.tags_all))
    if f.assigned_to_id:
        where.append(c.assigned_to_id.in_(f.assigned_to_id))
    if f.team_id:
        where.append(c.team_id.in_(f.team_id))
    if f.value_currency:
        where.append(c.value_currency == f.value_currency)
    if f.total_value_min is not None:
        where.append(c.total_value >= f.total_value_min)
    if f.total_value_max is not None:
        where.append(c.total_value <= f.total_value_max)
    if f.lifetime_value_min is not None:
        where.append(c.lifetime_value >= f.lifetime_value_min)
    if f.lifetime_value_max is not None:
        where.append(c.lifetime_value <= f.lifetime_value_max)
    if f.last_contact_from is not None:
        where.append(c.last_contact_date >= f.last_contact_from)
    if f.last_contact_to is not None:
        where.append(c.last_contact_date <= f.last_contact_to)
    if f.created_from is not None:
        where.append(c.created_at >= f.created_from)
    if f.created_to is not None:
        where.append(c.created_at <= f.created_to)
    if f.custom_fields:
        where.append(_custom_fields_equal(session, f.custom_fields))
    return where


# Lifecycle order for status, severity order for priority (not alphabetical).
_STATUS_RANK = sa.case(
    {"LEAD": 1, "PROSPECT": 2, "CUSTOMER": 3, "INACTIVE": 4}, value=Customer.status, else_=5
)
_PRIORITY_RANK = sa.case({"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}, value=Customer.priority, else_=5)
ASSIGNEE_NAME = directory.users.c.full_name

# Every column of the seed's customer-list view, plus a few more. `assignedTo.name` is accepted as
# the seed spells it.
SORTABLE: dict[str, sa.ColumnElement] = {
    "customerNumber": Customer.customer_number,
    "fullName": Customer.full_name,
    "type": Customer.type,
    "status": _STATUS_RANK,
    "email": Customer.email,
    "assignedToName": ASSIGNEE_NAME,
    "assignedTo.name": ASSIGNEE_NAME,
    "totalValue": Customer.total_value,
    "lastContactDate": Customer.last_contact_date,
    "createdAt": Customer.created_at,
    "updatedAt": Customer.updated_at,
    "priority": _PRIORITY_RANK,
    "lifetimeValue": Customer.lifetime_value,
    "companyName": Customer.company_name,
    "nextContactDate": Customer.next_contact_date,
}
# Nulls sort last in both directions, on both dialects.
_NULLABLE = {"assignedToName", "assignedTo.name", "lastContactDate", "companyName", "nextContactDate"}
DEFAULT_ORDER = [Customer.created_at.desc(), Customer.id.desc()]


def sort_clauses(sort: str | None) -> tuple[list, bool]:
    """ORDER BY clauses for `?sort=` and whether they need the assignee's name joined."""
    if not sort:
        return list(DEFAULT_ORDER), False
    clauses, needs_names = [], False
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        name = part.lstrip("-+")
        column = SORTABLE.get(name)
        if column is None:
            allowed = ", ".join(k for k in SORTABLE if k != "assignedTo.name")
            raise InvalidSort(
                f"Cannot sort by `{name}`; allowed: {allowed}.",
                errors=[FieldError(field="sort", message=f"unknown sort field {name}", code="invalid_sort")],
            )
        clause = column.desc() if part.startswith("-") else column.asc()
        if name in _NULLABLE:
            clause = clause.nulls_last()
        needs_names |= column is ASSIGNEE_NAME
        clauses.append(clause)
    return clauses + DEFAULT_ORDER, needs_names


def in_scope(caller: ScopedCaller, access: Access = "read") -> sa.ColumnElement[bool]:
    """The customers `caller` may read (or write): the owner is the assignee, the team the customer's."""
    return scope_clause(caller, Customer.assigned_to_id, Customer.team_id, access=access)


# Every column of the customer and its assignee's name, built once (a select of 40-odd columns is
# not free to build per request).
_ROWS = sa.select(*Customer.__table__.c, ASSIGNEE_NAME.label("assigned_to_name")).outerjoin(
    directory.users, directory.users.c.id == Customer.assigned_to_id
)


def customer_rows(session: AsyncSession, page: sa.Subquery) -> sa.Select:
    """Core rows of the customers whose ids `page` holds: every column of the customer, its
    assignee's name (`assigned_to_name`, from the directory) and its addresses (`addresses`, a list
    of dicts), for pages read without the ORM in one statement."""
    return _ROWS.add_columns(_addresses(session.bind.dialect.name)).join(page, page.c.id == Customer.id)


@cache
def _addresses(dialect: str) -> sa.ColumnElement[list]:
    """Each row's addresses aggregated to a JSON array in a correlated subquery (one index lookup per
    row of the page), in the order the database finds them, as the ORM's select-in load read them."""
    a = CustomerAddress.__table__
    pairs = [part for column in a.c if column.name != "customer_id" for part in (column.name, column)]
    if dialect == "postgresql":
        array = sa.func.coalesce(sa.func.json_agg(sa.func.json_build_object(*pairs)), sa.text("'[]'::json"))
    else:
        array = sa.func.json_group_array(sa.func.json_object(*pairs))
    found = sa.select(array).where(a.c.customer_id == Customer.id).scalar_subquery()
    return sa.type_coerce(found, sa.JSON).label("addresses")


def customer_select(
    session: AsyncSession,
    *,
    caller: ScopedCaller | None,
    q: str | None = None,
    f: SegmentFilter | None = None,
    sort: str | None = None,
    exclude_merged: bool = False,
    archived: ArchivedMode = "exclude",
) -> sa.Select:
    """`caller`: whose read scope limits the rows (None only for the service's own work)."""
    order, needs_names = sort_clauses(sort)
    query = sa.select(Customer).where(archived_clause(Customer.archived_at, archived))
    if caller is not None:
        query = query.where(in_scope(caller))
    if needs_names:
        query = query.outerjoin(directory.users, directory.users.c.id == Customer.assigned_to_id)
    if q and q.strip():
        query = query.where(search_condition(session, q))
    if f is not None:
        query = query.where(*filter_conditions(session, f))
    if exclude_merged:
        query = query.where(Customer.merged_into_id.is_(None))
    return query.order_by(*order)
