"""Identity tables owned by the gateway (schema `identity`)."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from crm_common.models import Field, SQLModel, id_field, json_field, new_registry, timestamp_field

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class User(Base, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.Index("uq_users_email_lower", sa.func.lower(sa.text("email")), unique=True),)

    id: uuid.UUID = id_field()
    email: str = Field(sa_type=sa.String(320), nullable=False)
    full_name: str = Field(sa_type=sa.String(200), nullable=False)
    password_hash: str | None = Field(default=None, sa_type=sa.String(200))
    roles: list[str] = json_field(list)
    is_active: bool = Field(default=True, nullable=False)
    time_zone: str = Field(default="UTC", sa_type=sa.String(64), nullable=False)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    version: int = Field(default=1, nullable=False)
