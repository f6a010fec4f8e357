"""Column helpers that keep one model portable across SQLite and Postgres."""

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

# JSONB on Postgres (indexable, compact), JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are stored and returned in UTC, time-zone aware, on both dialects (SQLite keeps
    no offset, so without this it would hand back naive datetimes)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must carry a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_registry() -> registry:
    """Each service keeps its tables in its own registry/metadata; in the embedded default all
    services share one process and must not see each other's tables."""
    return registry()


def _factory(make: Callable[[], Any]) -> Callable[[], Any]:
    """`make` as a table model's default factory. SQLModel builds a table row through pydantic's
    `FieldInfo.get_default`, which asks the factory's signature at every construction, for every
    field not given (whether it takes the validated data; not kept, as pydantic#13376 reports for
    private attributes): 117 us for `list`, whose signature is parsed from its text each time, 5 us
    for a plain function. A signature set once is read in 1.5 us."""

    def factory() -> Any:
        return make()

    factory.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return factory


_new_id = _factory(uuid.uuid4)
_now = _factory(utcnow)


def id_field() -> Any:
    return Field(default_factory=_new_id, primary_key=True, sa_type=sa.Uuid())


def timestamp_field(*, nullable: bool = False, index: bool = False) -> Any:
    kwargs: dict[str, Any] = {"sa_type": UtcDateTime(), "nullable": nullable, "index": index}
    if not nullable:
        kwargs["default_factory"] = _now
    else:
        kwargs["default"] = None
    return Field(**kwargs)


def updated_at_field() -> Any:
    """A record's last-change time: set on insert, and bumped by every UPDATE that does not set it
    itself (ORM flushes and `update()` statements alike, consumers' and merges' bulk re-pointing
    included), so incremental sync (`updatedAfter`, cursors) never misses a change."""
    return Field(
        default_factory=_now, sa_type=UtcDateTime(), nullable=False, sa_column_kwargs={"onupdate": utcnow}
    )


def version_column() -> sa.Column[int]:
    """A record's `version`, to map as SQLAlchemy's `version_id_col` (`__mapper_args__`) and as the
    `version` field's `sa_column`: every UPDATE carries `WHERE version = :seen` and bumps it, so a
    write racing past the If-Match check still fails (StaleDataError -> 412). A new column per table."""
    return sa.Column("version", sa.Integer(), nullable=False)


def money_field(default: Decimal | None = None, *, nullable: bool = True) -> Any:
    return Field(default=default, sa_type=sa.Numeric(18, 2), nullable=nullable)


def json_field(factory: Callable[[], Any] = dict) -> Any:
    return Field(default_factory=_factory(factory), sa_type=JSONType, nullable=False)


__all__ = [
    "Field",
    "SQLModel",
    "id_field",
    "json_field",
    "money_field",
    "new_registry",
    "timestamp_field",
    "updated_at_field",
    "utcnow",
    "version_column",
]
