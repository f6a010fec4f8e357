"""`crm events dlq ...`: the operator's view of dead letters, in either mode.

Each consuming service keeps the events it gave up on in its own `event_dead_letters` table
(crm_common.events.dead_letters): in `<data dir>/<service>.db` on the embedded default, in the
service's schema on Postgres. The settings say where, as for `crm migrate`: CRM_DATA_DIR, or
CRM_DATABASE_URL (and CRM_<SERVICE>_DB_SCHEMA). With CRM_AMQP_URL set, the broker's dead-letter
queues (`<service>.events.dlq`: messages the consumer could not even record) are counted by `list`,
drained by `replay` and emptied by `purge --all`.

A dead letter's ID is `<service>/<number>`; `show` and `replay --id` also take an event id (every
service's dead letter of that event). A replay runs the service's handler here, through the inbox,
exactly as its consumer would: an event already applied changes nothing. The row is removed once it
succeeded; a replay that fails again keeps it, with the new error and one more attempt. Effects of a
replay (a note, events of its own in the outbox) are committed to the service's database; the
running CRM's relay publishes those events at its next poll (or at the next start).
"""

import argparse
import importlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from crm_common.db import Database
from crm_common.events import dead_letters as dl
from crm_common.events import operations as ops
from crm_common.events.acceptance import UnreadableMessage, read_message
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.inbox import EventHandler as Handler
from crm_common.events.inbox import idempotent_dispatcher
from crm_common.settings import ServiceSettings

CONSUMERS = tuple(SUBSCRIPTIONS)

# What idempotent_dispatcher returns: hand it one event, it applies it through the inbox.
Dispatcher = Callable[..., Awaitable[Any]]


class DlqError(Exception):
    """An operator error, said in one line."""


@dataclass
class Letter:
    id: str
    service: str
    consumer: str
    event_id: str
    event_type: str
    attempts: int
    first_failed_at: str
    last_failed_at: str
    error: str
    payload: dict[str, Any]
    # The consumer's inbox has the event: a later delivery applied it after this was recorded (a
    # delivery given up on while a redelivery succeeded). `replay` just removes it.
    applied: bool = False

    @property
    def summary(self) -> str:
        return self.error.splitlines()[0] if self.error else ""


@dataclass
class Outcome:
    id: str
    event_type: str
    result: str  # applied | already applied | failed: ...

    @property
    def ok(self) -> bool:
        return not self.result.startswith("failed")


def _settings(name: str) -> ServiceSettings:
    if name == "gateway":
        from crm_gateway.settings import GatewaySettings

        return GatewaySettings()
    settings: ServiceSettings = importlib.import_module(f"{name}_svc.settings").Settings()
    return settings


class Service:
    """One consuming service's database (opened only if there is one to open)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.settings = _settings(name)
        self._db: Database | None = None

    @property
    def embedded_file(self) -> Path | None:
        if self.settings.database_url:
            return None
        return self.settings.data_dir / f"{self.name}.db"

    def exists(self) -> bool:
        file = self.embedded_file
        return file is None or file.exists()

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.resolved_database_url(), schema=self.settings.schema_name)
        return self._db

    async def has_table(self, name: str = dl.dead_letters.name) -> bool:
        if not self.exists():
            return False
        async with self.db.engine.connect() as conn:
            return await conn.run_sync(lambda c: sa.inspect(c).has_table(name))

    async def close(self) -> None:
        if self._db is not None:
            await self._db.dispose()

    def handlers(self) -> dict[str, Handler]:
        """The service's event handlers, as its app wires them (the user directory's included)."""
        app = importlib.import_module(f"{self.name}_svc.app").create_app(self.settings)
        handlers: dict[str, Handler] = app.state.event_handlers
        return handlers


def _services(service: str | None) -> list[Service]:
    if service is not None and service not in CONSUMERS:
        raise DlqError(f"unknown service {service!r} (one of: {', '.join(CONSUMERS)})")
    return [Service(name) for name in ((service,) if service else CONSUMERS)]


def _letter(service: str, row: sa.Row[Any]) -> Letter:
    return Letter(
        id=f"{service}/{row.id}",
        service=service,
        consumer=row.consumer,
        event_id=str(row.event_id),
        event_type=row.event_type,
        attempts=row.attempts,
        first_failed_at=row.first_failed_at.isoformat(),
        last_failed_at=row.last_failed_at.isoformat(),
        error=row.error,
        payload=row.payload,
        applied=row.applied,
    )


def _parse_id(ident: str) -> tuple[str | None, int | None, uuid.UUID | None]:
    """`service/number` or an event id."""
    if "/" in ident:
        service, _, number = ident.partition("/")
        if service not in CONSUMERS or not number.isdigit():
            raise DlqError(f"not a dead letter id: {ident!r} (expected <service>/<number> or an event id)")
        return service, int(number), None
    try:
        return None, None, uuid.UUID(ident)
    except ValueError:
        raise DlqError(
            f"not a dead letter id: {ident!r} (expected <service>/<number> or an event id)"
        ) from None


async def _rows(
    svc: Service, number: int | None = None, event_id: uuid.UUID | None = None
) -> list[sa.Row[Any]]:
    return await ops.dead_letter_rows(svc.db, number=number, event_id=event_id)


async def _each(service: str | None) -> list[Service]:
    """The services that have a dead-letter table, opened; closed afterwards by the caller."""
    found: list[Service] = []
    for svc in _services(service):
        if await svc.has_table():
            found.append(svc)
        else:
            await svc.close()
    return found


async def list_letters(service: str | None = None) -> list[Letter]:
    letters = []
    for svc in await _each(service):
        try:
            letters += [_letter(svc.name, row) for row in await _rows(svc)]
        finally:
            await svc.close()
    return letters


async def find(ident: str) -> list[Letter]:
    service, number, event_id = _parse_id(ident)
    letters = []
    for svc in await _each(service):
        try:
            letters += [_letter(svc.name, row) for row in await _rows(svc, number, event_id)]
        finally:
            await svc.close()
    return letters


async def replay(service: str | None = None, ident: str | None = None) -> list[Outcome]:
    """Replay one dead letter (`ident`) or every one (of `service`), then the broker's dead-letter
    queues when there is a broker. Removes each that succeeds."""
    number = event_id = None
    if ident is not None:
        id_service, number, event_id = _parse_id(ident)
        if service is not None and id_service is not None and id_service != service:
            raise DlqError(f"{ident} is not a dead letter of {service}")
        service = id_service or service
    outcomes: list[Outcome] = []
    for svc in await _each(service):
        try:
            rows = await _rows(svc, number, event_id)
            if not rows:
                continue
            dispatch = idempotent_dispatcher(svc.db, svc.name, svc.handlers())
            for row in rows:
                outcomes.append(await _replay_row(svc, dispatch, row))
        finally:
            await svc.close()
    if ident is None:
        outcomes += await _replay_broker(service)
    return outcomes


async def _replay_row(svc: Service, dispatch: Dispatcher, row: sa.Row[Any]) -> Outcome:
    result = await ops.replay_dead_letter(svc.db, dispatch, row)
    return Outcome(f"{svc.name}/{row.id}", row.event_type, result)


async def purge(service: str | None = None, ident: str | None = None) -> int:
    """Delete one dead letter (`ident`) or every one (of `service`), and with every one the broker's
    dead-letter queues; returns how many were removed."""
    number = event_id = None
    if ident is not None:
        id_service, number, event_id = _parse_id(ident)
        service = id_service or service
    removed = 0
    for svc in await _each(service):
        try:
            removed += await ops.discard_dead_letters(svc.db, number=number, event_id=event_id)
        finally:
            await svc.close()
    if ident is None:
        removed += await _purge_broker(service)
    return removed


# --- RabbitMQ's dead-letter queues (distributed mode) ---------------------------------------------


def _broker() -> tuple[str, Any] | None:
    from crm_common.events.rabbitmq_bus import RabbitBus

    settings = _settings(CONSUMERS[0])
    if not settings.amqp_url:
        return None
    return settings.amqp_url, RabbitBus(settings.amqp_url, namespace=settings.events_namespace)


async def _broker_queue(channel: Any, name: str) -> Any:
    """The queue, or None if it was never declared (declaring passively closes the channel then)."""
    import aio_pika.exceptions

    try:
        return await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None


async def broker_counts(service: str | None = None) -> dict[str, int]:
    """Messages waiting in each service's broker dead-letter queue (empty without a broker)."""
    broker = _broker()
    if broker is None:
        return {}
    import aio_pika

    url, names = broker
    counts = {}
    async with await aio_pika.connect(url) as connection:
        for svc in _services(service):
            channel = await connection.channel()
            queue = await _broker_queue(channel, names.dead_letter_queue_name(svc.name))
            if queue is not None:
                counts[svc.name] = queue.declaration_result.message_count or 0
                await channel.close()
    return counts


async def _replay_broker(service: str | None) -> list[Outcome]:
    broker = _broker()
    if broker is None:
        return []
    import aio_pika

    url, names = broker
    outcomes: list[Outcome] = []
    async with await aio_pika.connect(url) as connection:
        for svc in _services(service):
            channel = await connection.channel()
            queue = await _broker_queue(channel, names.dead_letter_queue_name(svc.name))
            if queue is None or not queue.declaration_result.message_count:
                continue
            try:
                dispatch = idempotent_dispatcher(svc.db, svc.name, svc.handlers())
                for _ in range(queue.declaration_result.message_count):
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    outcome = await _replay_message(svc, dispatch, message, queue.name)
                    outcomes.append(outcome)
                    if outcome.result.startswith("failed to record"):
                        break
            finally:
                await svc.close()
                await channel.close()
    return outcomes


async def _replay_message(svc: Service, dispatch: Dispatcher, message: Any, queue: str) -> Outcome:
    ident = f"{queue}#{message.message_id or '?'}"
    try:
        event = read_message(message.body)
    except UnreadableMessage as exc:
        # Not an event: from now on a dead letter in the service's table, with the reason.
        try:
            await dl.record_unreadable(svc.db, svc.name, message.body, exc, message_id=message.message_id)
        except Exception as write_error:
            await message.nack(requeue=True)
            return Outcome(ident, message.type or "?", f"failed to record, left in {queue}: {write_error}")
        await message.ack()
        return Outcome(ident, dl.UNREADABLE_TYPE, f"failed: {exc}; now in {svc.name}'s dead letters")
    try:
        result = await dispatch(event)
    except Exception as exc:
        # Still failing: from now on it is a dead letter like any other, in the service's table.
        try:
            await dl.record(svc.db, svc.name, event, exc, 1)
        except Exception as write_error:
            await message.nack(requeue=True)
            return Outcome(ident, event.type, f"failed to record, left in {queue}: {write_error}")
        await message.ack()
        return Outcome(ident, event.type, f"failed again, now in {svc.name}'s dead letters: {exc}")
    await message.ack()
    return Outcome(ident, event.type, "applied" if result == "applied" else "already applied")


async def _purge_broker(service: str | None) -> int:
    broker = _broker()
    if broker is None:
        return 0
    import aio_pika

    url, names = broker
    removed = 0
    async with await aio_pika.connect(url) as connection:
        for svc in _services(service):
            channel = await connection.channel()
            queue = await _broker_queue(channel, names.dead_letter_queue_name(svc.name))
            if queue is not None:
                result = await queue.purge()
                removed += result.message_count or 0
                await channel.close()
    return removed


# --- the command ----------------------------------------------------------------------------------


def add_commands(
    events_parser: argparse.ArgumentParser,
) -> "argparse._SubParsersAction[argparse.ArgumentParser]":
    """`crm events dlq list|show|replay|purge`, under the `crm events` parser; returns the group of
    `crm events` commands (crm_gateway.outbox adds its own)."""
    groups = events_parser.add_subparsers(dest="events_command", required=True)
    dlq = groups.add_parser("dlq", help="dead letters: events a consumer could not apply")
    sub = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = sub.add_parser("list", help="list dead letters (and count the broker's dead-letter queues)")
    ls.add_argument("--service", choices=CONSUMERS)
    ls.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    show = sub.add_parser("show", help="one dead letter in full: payload and error")
    show.add_argument("id", help="<service>/<number>, or an event id")
    rp = sub.add_parser(
        "replay", help="run dead letters through their handler again; removes each that succeeds"
    )
    rp.add_argument("--service", choices=CONSUMERS)
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="<service>/<number>, or an event id")
    which.add_argument("--all", action="store_true", help="every dead letter (of --service)")
    pg = sub.add_parser("purge", help="delete dead letters without applying them")
    pg.add_argument("--service", choices=CONSUMERS)
    which = pg.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="<service>/<number>, or an event id")
    which.add_argument("--all", action="store_true", help="every dead letter (of --service)")
    return groups


async def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `crm events dlq ...`; prints its outcome, returns the exit status."""
    command = args.dlq_command
    if command == "list":
        letters = await list_letters(args.service)
        counts = await broker_counts(args.service)
        if args.json:
            print(json.dumps({"deadLetters": [asdict(x) for x in letters], "brokerQueues": counts}, indent=2))
            return 0
        if not letters:
            print("No dead letters.")
        else:
            print(f"{'ID':<16} {'EVENT TYPE':<32} {'EVENT ID':<36} {'TRIES':>5}  {'LAST FAILED':<25} ERROR")
            for x in letters:
                print(
                    f"{x.id:<16} {x.event_type:<32} {x.event_id:<36} {x.attempts:>5}  "
                    f"{x.last_failed_at[:25]:<25} {'(applied since) ' if x.applied else ''}{x.summary[:100]}"
                )
        for name, count in counts.items():
            if count:
                print(
                    f"{name}: {count} message(s) in the broker's dead-letter queue (replay --all drains it)"
                )
        return 0
    if command == "show":
        letters = await find(args.id)
        if not letters:
            raise DlqError(f"no dead letter {args.id}")
        for x in letters:
            print(json.dumps(asdict(x), indent=2))
        return 0
    if command == "replay":
        outcomes = await replay(args.service, None if args.all else args.id)
        if not outcomes:
            print("Nothing to replay." if args.all else f"No dead letter {args.id}.")
            return 0 if args.all else 1
        for o in outcomes:
            print(f"{o.id}  {o.event_type}  {o.result}")
        failed = sum(not o.ok for o in outcomes)
        print(f"{len(outcomes) - failed} replayed, {failed} still failing.")
        return 1 if failed else 0
    if command == "purge":
        removed = await purge(args.service, None if args.all else args.id)
        print(f"{removed} dead letter(s) removed.")
        return 0
    raise DlqError(f"unknown command {command}")
