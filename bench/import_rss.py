"""Memory of a large customer import, with and without `Idempotency-Key`.

Starts `crm up` (the embedded default) on a fresh data folder per run, streams a JSON-lines import of
`--mb` megabytes through the gateway (generated on the fly: the client holds none of it), and prints
the server process's resident memory before and after, and its peak (VmHWM). The runs without and with
the key go side by side in one invocation; then the keyed import is sent again to show it replays.

    .venv/bin/python bench/import_rss.py --mb 300
    .venv/bin/python bench/import_rss.py --mb 50 --distinct 500

Rows cycle through `--distinct` emails with ~19 KB of notes each, so the body is large while the
database work stays small (after the first pass every row is `unchanged`).
"""

import argparse
import json
import time
import uuid
from pathlib import Path

import httpx
from _support import clean_env, free_port, logger, scratch_dir, start, stop, wait_ready

log = logger("import_rss")
ADMIN_PASSWORD = "bench-Secret-pass-1"
NOTES = "n" * 19_000


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def body(megabytes: int, distinct: int, run: str):
    """JSON lines, generated as they are sent."""
    target, sent, i = megabytes * 1024 * 1024, 0, 0
    chunk: list[bytes] = []
    while sent < target:
        n = i % distinct
        line = json.dumps(
            {"firstName": "Row", "lastName": str(n), "email": f"{run}-{n}@import.example", "notes": NOTES}
        ).encode()
        chunk.append(line + b"\n")
        sent += len(line) + 1
        i += 1
        if len(chunk) == 64:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def one_run(folder: Path, *, megabytes: int, distinct: int, keyed: bool) -> dict:
    port = free_port()
    env = clean_env(
        CRM_DATA_DIR=str(folder / "data"),
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CRM_RATE_LIMIT_ENABLED="false",
        CRM_LOG_LEVEL="WARNING",
    )
    logs = folder / "crm.log"
    proc = start([".venv/bin/python", "-m", "crm_gateway.cli", "up"], env, logs)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, base + "/readyz", name="crm up", log_file=logs, timeout=120)
        with httpx.Client(base_url=base, timeout=None) as client:
            token = client.post(
                "/api/v1/auth/token", data={"username": "admin@example.com", "password": ADMIN_PASSWORD}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
            if keyed:
                headers["Idempotency-Key"] = f"import-{uuid.uuid4()}"
            # Warm up the import path (imports, caches) so "before" is the steady state.
            warm = {**headers, "Idempotency-Key": f"warm-{uuid.uuid4()}"} if keyed else headers
            client.post("/api/v1/customers/import", content=body(1, distinct, "warm"), headers=warm)
            time.sleep(1)
            before, _ = rss_mb(proc.pid)
            run = uuid.uuid4().hex[:8]
            started = time.monotonic()
            resp = client.post(
                "/api/v1/customers/import", content=body(megabytes, distinct, run), headers=headers
            )
            took = time.monotonic() - started
            after, peak = rss_mb(proc.pid)
            result = {
                "keyed": keyed,
                "status": resp.status_code,
                "report": {k: v for k, v in resp.json().items() if k != "errors"},
                "seconds": round(took, 1),
                "rss_before_mb": round(before),
                "rss_after_mb": round(after),
                "peak_mb": round(peak),
            }
            if keyed:
                again = client.post(
                    "/api/v1/customers/import", content=body(megabytes, distinct, run), headers=headers
                )
                result["replayed"] = (
                    again.headers.get("idempotent-replayed") == "true" and again.content == resp.content
                )
                result["peak_after_replay_mb"] = round(rss_mb(proc.pid)[1])
            return result
    finally:
        stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=300, help="size of the import body in MiB")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct emails the rows cycle through")
    parser.add_argument("--keep", action="store_true", help="keep the data folders and logs")
    args = parser.parse_args()
    results = []
    for keyed in (False, True):
        with scratch_dir("crm-import-rss-", keep=args.keep, log=log) as folder:
            log(f"{'with' if keyed else 'without'} Idempotency-Key: {args.mb} MiB")
            results.append(one_run(folder, megabytes=args.mb, distinct=args.distinct, keyed=keyed))
    print(f"import of {args.mb} MiB JSON lines through `crm up` (RSS of the server process, MiB)")
    print(f"{'key':<8}{'status':>7}{'seconds':>9}{'before':>8}{'after':>8}{'peak':>8}  rows")
    for r in results:
        print(
            f"{'yes' if r['keyed'] else 'no':<8}{r['status']:>7}{r['seconds']:>9}{r['rss_before_mb']:>8}"
            f"{r['rss_after_mb']:>8}{r['peak_mb']:>8}  {r['report']}"
        )
    keyed = results[-1]
    print(
        f"keyed import sent again: replayed={keyed['replayed']}, peak then {keyed['peak_after_replay_mb']} MiB"
    )


if __name__ == "__main__":
    main()
