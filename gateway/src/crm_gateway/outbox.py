"""`crm events outbox list|replay <service>`: the events a service wrote and has not sent, and sending
events again.

Every service (the gateway too) writes its events to its own `event_outbox` table in the same
transaction as the change; its relay publishes them and marks them PUBLISHED. `list` shows the rows
that need an eye: PENDING (not sent yet: the broker is away, or a publish failed and waits for its
backoff), FAILED (not a CloudEvent: never sendable as it is) and UNROUTED (no queue was bound for its
type when it was sent), with their age. `replay` sets the chosen rows, whatever their state, back to
PENDING and due now, so the service's relay publishes them again at its next poll (or at its next
start if it is not running). Consumers are idempotent through their inbox: an event they already
applied is skipped, so replaying too much is harmless. PUBLISHED rows are kept for
CRM_OUTBOX_RETENTION_HOURS (7 days), so that is how far back a replay can reach.
"""

import argparse
import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from crm_common.events import operations as ops
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.tables import outbox

from crm_gateway.dlq import DlqError, Service

PRODUCERS = ("gateway", *SUBSCRIPTIONS)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise DlqError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h, 1d)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def parse_time(text: str) -> datetime:
    """An RFC 3339 time, or a duration meaning that long ago (`15m`)."""
    if _DURATION.match(text.strip()):
        return datetime.now(UTC) - parse_duration(text)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DlqError(
            f"not a time: {text!r} (RFC 3339, e.g. 2026-12-06T21:00:00Z, or a duration: 15m)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _row(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "position": row.position,
        "eventId": str(row.event_id),
        "type": f"crm.{row.routing_key}",
        "state": row.state,
        "attempts": row.attempts,
        "createdAt": row.created_at.isoformat(),
        "ageSeconds": round(ops.age_seconds(row.created_at), 1),
        "nextAttemptAt": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "publishedAt": row.published_at.isoformat() if row.published_at else None,
        "lastError": row.last_error,
    }


async def _open(service: str) -> Service:
    if service not in PRODUCERS:
        raise DlqError(f"unknown service {service!r} (one of: {', '.join(PRODUCERS)})")
    svc = Service(service)
    if not await svc.has_table(outbox.name):
        await svc.close()
        raise DlqError(f"{service} has no outbox here (not migrated yet, or another CRM_DATA_DIR)")
    return svc


async def list_rows(
    service: str,
    *,
    states: Sequence[str] = ops.UNSENT,
    event_type: str | None = None,
    older_than: timedelta | None = None,
) -> list[dict[str, Any]]:
    svc = await _open(service)
    try:
        rows, _ = await ops.outbox_rows(svc.db, states=states, event_type=event_type, older_than=older_than)
    finally:
        await svc.close()
    return [_row(r) for r in rows]


async def replay(
    service: str,
    *,
    event_ids: list[uuid.UUID] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: str | None = None,
    states: Sequence[str] | None = None,
) -> int:
    svc = await _open(service)
    try:
        return await ops.replay_outbox(
            svc.db, event_ids=event_ids, since=since, until=until, event_type=event_type, states=states
        )
    finally:
        await svc.close()


def add_commands(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`crm events outbox list|replay`, in the group of `crm events` commands."""
    box = groups.add_parser("outbox", help="events a service has not sent yet, and sending events again")
    sub = box.add_subparsers(dest="outbox_command", required=True)
    ls = sub.add_parser(
        "list",
        help="outbox rows that are PENDING, FAILED or UNROUTED (or --state ...), oldest first, with age",
    )
    ls.add_argument("service", choices=PRODUCERS)
    ls.add_argument("--state", action="append", choices=ops.OUTBOX_STATES, help="repeatable")
    ls.add_argument("--type", help="event type, e.g. customer.created")
    ls.add_argument("--older-than", help="only rows older than this, e.g. 5m, 2h")
    ls.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    rp = sub.add_parser(
        "replay",
        help="publish events again: sets the chosen rows back to PENDING for the service's relay. "
        "Consumers are idempotent through their inbox: an event they already applied is skipped.",
        description="Sets the chosen outbox rows, whatever their state, back to PENDING and due now; the "
        "service's relay publishes them at its next poll (or at its next start). Consumers are "
        "idempotent through their inbox: an event they already applied is skipped, so replaying "
        "more than needed is harmless. PUBLISHED rows are kept CRM_OUTBOX_RETENTION_HOURS (168).",
    )
    rp.add_argument("service", choices=PRODUCERS)
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", type=uuid.UUID, help="an event id (repeatable)")
    which.add_argument(
        "--since", help="rows written at or after this time (RFC 3339, or a duration ago: 15m)"
    )
    rp.add_argument("--until", help="with --since: rows written before this time")
    rp.add_argument("--type", help="only this event type")
    rp.add_argument("--state", action="append", choices=ops.OUTBOX_STATES, help="only rows in this state")


async def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `crm events outbox ...`; prints its outcome, returns the exit status."""
    if args.outbox_command == "list":
        older = parse_duration(args.older_than) if args.older_than else None
        rows = await list_rows(
            args.service, states=args.state or ops.UNSENT, event_type=args.type, older_than=older
        )
        if args.json:
            print(json.dumps({"service": args.service, "rows": rows}, indent=2))
            return 0
        if not rows:
            print(f"No {'/'.join(args.state or ops.UNSENT)} outbox rows in {args.service}.")
            return 0
        print(
            f"{'POSITION':>8}  {'STATE':<9} {'EVENT TYPE':<34} {'EVENT ID':<36} {'TRIES':>5} {'AGE':>8}  ERROR"
        )
        for r in rows:
            print(
                f"{r['position']:>8}  {r['state']:<9} {r['type']:<34} {r['eventId']:<36} {r['attempts']:>5} "
                f"{_age(r['ageSeconds']):>8}  {(r['lastError'] or '')[:100]}"
            )
        return 0
    if args.outbox_command == "replay":
        if args.until and not args.since:
            raise DlqError("--until goes with --since")
        count = await replay(
            args.service,
            event_ids=args.id,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            event_type=args.type,
            states=args.state,
        )
        if not count:
            print(f"No outbox row of {args.service} matches.")
            return 1
        print(
            f"{count} event(s) of {args.service} set to PENDING: its relay publishes them again at its next "
            "poll; consumers skip those they already applied."
        )
        return 0
    raise DlqError(f"unknown command {args.outbox_command}")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
