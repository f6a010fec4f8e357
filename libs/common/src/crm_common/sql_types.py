"""Type names for SQLAlchemy statements and rows of any shape.

SQLAlchemy 2.1 types a statement and its rows by their columns (`select(a, b)` is a
`Select[int, str]`, its rows `Row[int, str]`), so `Select[Any]` reads as a select of one column.
Code that takes whatever its caller selected (paging, record lookups) uses these instead."""

from typing import Any

from sqlalchemy import Row, Select

AnySelect = Select[*tuple[Any, ...]]
AnyRow = Row[*tuple[Any, ...]]
