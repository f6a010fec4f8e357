"""What a consistency token costs a read (crm_common.consistency), embedded default.

    .venv/bin/python bench/consistency_bench.py [--pairs 100]

One process, SQLite files in a temporary folder, events on the in-process bus as usual. For each
round, side by side in one run:
- baseline: GET /api/v1/opportunities/{id} of an opportunity that exists, without a token;
- token:    convert a lead with an opportunity draft, then GET that opportunity with the convert's
  CRM-Consistency-Token (pipeline-svc creates it from customer.converted: the read waits for it).
Prints p50/p90/p99 of both reads, how many were answered `stale`, and the difference of the medians.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "bench-Password-1"
TOKEN = "CRM-Consistency-Token"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(pairs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = GatewaySettings(
            data_dir=Path(folder), admin_password=PASSWORD, admin_email="b@example.com"
        )
        app = create_embedded_app(settings, only=("customer", "pipeline"))
        async with running(app) as gw:
            token = (
                await gw.post("/api/v1/auth/token", data={"username": "b@example.com", "password": PASSWORD})
            ).json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}

            async def converted() -> tuple[str, str]:
                body = {"firstName": "B", "lastName": "Ench", "email": f"{uuid.uuid4().hex}@example.com"}
                lead = (await gw.post("/api/v1/customers", json=body, headers=h)).json()
                r = await gw.post(
                    f"/api/v1/customers/{lead['id']}/convert", json={"opportunity": {"title": "T"}}, headers=h
                )
                assert r.status_code == 200, r.text
                return r.json()["opportunity"]["opportunityId"], r.headers[TOKEN]

            async def read(opportunity_id: str, headers: dict) -> tuple[float, bool]:
                started = time.perf_counter()
                r = await gw.get(f"/api/v1/opportunities/{opportunity_id}", headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                assert r.status_code == 200, r.text
                return elapsed, r.headers.get("crm-consistency") == "stale"

            existing, first_token = await converted()
            await read(existing, {**h, TOKEN: first_token})
            base, waited, stale = [], [], 0
            for _ in range(pairs):
                base.append((await read(existing, h))[0])
                opportunity_id, tok = await converted()
                elapsed, was_stale = await read(opportunity_id, {**h, TOKEN: tok})
                waited.append(elapsed)
                stale += was_stale
            print(f"rounds: {pairs}, answered stale: {stale}")
            for name, values in (("baseline read (no token)", base), ("read with token", waited)):
                print(
                    f"{name:26s} p50 {pct(values, 0.5):7.2f} ms  p90 {pct(values, 0.9):7.2f} ms  "
                    f"p99 {pct(values, 0.99):7.2f} ms"
                )
            print(
                f"added by the token (median): {statistics.median(waited) - statistics.median(base):.2f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    sys.exit(asyncio.run(main(parser.parse_args().pairs)))
