"""CPU per overload refusal (issue 22): what a 503 OVERLOADED costs the process that answers it.

Under overload most of what a process answers are refusals, and each one's CPU is taken from the
requests it serves: in the embedded default, one event loop serves both. This builds the embedded
app (every service, SQLite in a scratch folder), fills every admission budget so that each request
is refused at once, and sends `--requests` GETs straight into the ASGI stack (no network, no
server), printing the process CPU per refusal. bench/overload.py measures the same from outside.

    .venv/bin/python bench/refusal_cost.py [--requests 20000]
"""

import argparse
import asyncio
import time
import uuid

from _support import logger, scratch_dir
from crm_common.admission import AdmissionMiddleware, Budget
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from starlette.types import Message, Scope

log = logger("refusal_cost")
WARMUP = 500


def full(budget: Budget) -> Budget:
    """Every slot taken and no queue: the next request is refused on arrival."""
    budget.in_flight, budget.queue = 10**6, 0
    return budget


def admission_in(stack) -> AdmissionMiddleware:
    node = stack
    while not isinstance(node, AdmissionMiddleware):
        node = node.app
    return node


async def measure(requests: int, data_dir) -> float:
    settings = GatewaySettings(data_dir=data_dir, admin_password=uuid.uuid4().hex, rate_limit_enabled=False)
    stack = create_embedded_app(settings).build_middleware_stack()
    admission = admission_in(stack)
    budget_for = admission.budget_for
    admission.budget_for = lambda scope: full(budget_for(scope))
    path = f"/api/v1/customers/{uuid.uuid4()}"
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(WARMUP):
        await stack(dict(scope), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await stack(dict(scope), receive, send)
    used = time.process_time() - started
    if set(statuses) != {503}:
        raise SystemExit(f"expected only 503 refusals, got {sorted(set(statuses))}")
    return used / requests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    with scratch_dir("crm-refusal-", keep=False, log=log) as data_dir:
        seconds = asyncio.run(measure(args.requests, data_dir))
    print(f"refusal: {seconds * 1e6:.1f} us CPU each ({args.requests} requests, embedded app, in process)")


if __name__ == "__main__":
    main()
