"""What a fallback customer lookup adds to a write (crm_common.customer_lookup), embedded default.

    .venv/bin/python bench/customer_lookup_bench.py [--pairs 200]

One process, SQLite files in a temporary folder, customer-svc's events held back (its relay stopped)
so pipeline-svc cannot have heard of a new customer. For each pair, side by side in one run:
- baseline: POST /api/v1/opportunities for a customer pipeline-svc already knows;
- lookup:   POST /api/v1/opportunities for a customer created just before, which pipeline-svc asks
  customer-svc about (in process) and records before writing.
Prints p50/p90/p99 of each and the difference of the medians.
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
            for task in app.state.services["customer"].state.runtime.tasks:
                task.cancel()

            async def customer() -> str:
                body = {"firstName": "B", "lastName": "Ench", "email": f"{uuid.uuid4().hex}@example.com"}
                r = await gw.post("/api/v1/customers", json=body, headers=h)
                assert r.status_code == 201, r.text
                return r.json()["id"]

            async def opportunity(cid: str) -> float:
                started = time.perf_counter()
                r = await gw.post("/api/v1/opportunities", json={"title": "T", "customerId": cid}, headers=h)
                elapsed = time.perf_counter() - started
                assert r.status_code == 201, r.text
                return elapsed * 1000

            known = await customer()
            await opportunity(known)  # pipeline-svc learns it (and everything is warm)
            base, looked = [], []
            for _ in range(pairs):
                fresh = await customer()
                base.append(await opportunity(known))
                looked.append(await opportunity(fresh))
            lookup = app.state.services["pipeline"].state.customer_lookup
            print(f"pairs: {pairs}, lookups made: {lookup.calls}")
            for name, values in (("baseline (known customer)", base), ("fallback lookup", looked)):
                print(
                    f"{name:28s} p50 {pct(values, 0.5):6.2f} ms  p90 {pct(values, 0.9):6.2f} ms  "
                    f"p99 {pct(values, 0.99):6.2f} ms"
                )
            print(
                f"added by the lookup (median): {statistics.median(looked) - statistics.median(base):.2f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    sys.exit(asyncio.run(main(parser.parse_args().pairs)))
