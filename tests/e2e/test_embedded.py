"""End to end on the embedded default, the way a newcomer runs it: `crm up` as a real process on a
fresh data folder, driven over HTTP through the gateway, stopped with SIGTERM and started again."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from crm_gateway.cli import default_workers

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "e2e-Secret-pass-1"
STARTUP_TIMEOUT = 90.0  # a cold start on a loaded 2-core CI machine has taken over 30 s
NOTE_TIMEOUT = 10.0


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so no outgoing connection takes it in the
    seconds before `crm up` binds it (and binds it again after the restart)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


@dataclass
class Crm:
    """One `crm up` process."""

    process: subprocess.Popen
    base_url: str
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def logs(self, lines: int = 40) -> str:
        tail = self.stderr_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- stdout ---\n{self.stdout()}\n--- stderr (last {lines} lines) ---\n" + "\n".join(tail)

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"`crm up` exited with {self.process.returncode}\n{self.logs()}", pytrace=False)
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`crm up` not healthy after {timeout}s\n{self.logs()}", pytrace=False)
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, as a service manager would; fails the test unless it shuts down gracefully."""
        assert self.process.poll() is None, f"`crm up` died early\n{self.logs()}"
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            pytest.fail(f"`crm up` ignored SIGTERM for {timeout}s\n{self.logs()}", pytrace=False)
        # uvicorn finishes the lifespan, then re-raises the signal: exit 0 or "killed by SIGTERM".
        assert self.process.returncode in (0, -signal.SIGTERM), self.logs()
        assert "Application shutdown complete" in self.stderr_path.read_text(), self.logs()


@pytest.fixture
def crm_up(tmp_path) -> Iterator[Callable[..., Crm]]:
    """start(data_dir, port, **env) runs `python -m crm_gateway.cli up` and waits until it is healthy.
    Every process started is stopped at teardown, whatever the test did."""
    started: list[Crm] = []

    def start(data_dir: Path, port: int, **env: str) -> Crm:
        # A newcomer's shell: no CRM_* settings left over from the environment running the tests.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        clean |= {"CRM_DATA_DIR": str(data_dir), "CRM_PORT": str(port), "PYTHONUNBUFFERED": "1", **env}
        n = len(started) + 1
        stdout_path, stderr_path = tmp_path / f"crm-up-{n}.out", tmp_path / f"crm-up-{n}.err"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "crm_gateway.cli", "up"],
                env=clean,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        crm = Crm(process, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
        started.append(crm)
        crm.wait_healthy()
        return crm

    yield start
    for crm in started:
        if crm.process.poll() is None:
            crm.process.kill()
            crm.process.wait(timeout=10)


def token(client: httpx.Client, password: str, email: str = ADMIN_EMAIL) -> str:
    resp = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] > 0
    return body["access_token"]


def customer_notes(client: httpx.Client, customer_id: str) -> list[dict]:
    resp = client.get("/api/v1/activities", params={"customerId": customer_id})
    assert resp.status_code == 200, resp.text
    return [a for a in resp.json()["items"] if a["subject"] == "Customer created"]


def wait_for_note(client: httpx.Client, customer_id: str) -> list[dict]:
    deadline = time.monotonic() + NOTE_TIMEOUT
    while not (notes := customer_notes(client, customer_id)):
        assert time.monotonic() < deadline, f"no 'Customer created' note after {NOTE_TIMEOUT}s"
        time.sleep(0.05)
    return notes


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    return body


def test_first_slice_survives_a_restart(crm_up, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    env = {"CRM_ADMIN_PASSWORD": ADMIN_PASSWORD}
    crm = crm_up(data_dir, port, **env)
    assert f"http://127.0.0.1:{port}" in crm.stdout()
    # The password was chosen: nothing is generated, so nothing is printed.
    assert ADMIN_PASSWORD not in crm.stdout() and "admin created" not in crm.stdout()

    with httpx.Client(base_url=crm.base_url, timeout=10) as anonymous:
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert anonymous.get("/docs").status_code == 200
        doc = anonymous.get("/openapi.json")
        assert doc.status_code == 200
        paths = doc.json()["paths"]
        for path in ("/api/v1/auth/token", "/api/v1/customers", "/api/v1/activities"):
            assert path in paths, sorted(paths)
        assert "post" in paths["/api/v1/customers"] and "get" in paths["/api/v1/activities"]

        # Bad requests are problem documents, never a 500 or FastAPI's own shape.
        assert_problem(anonymous.get("/api/v1/customers"), 401, "UNAUTHORIZED")
        wrong = anonymous.post("/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": "nope"})
        assert_problem(wrong, 400, "INVALID_CREDENTIALS")
        access = token(anonymous, ADMIN_PASSWORD)

    headers = {"Authorization": f"Bearer {access}"}
    with httpx.Client(base_url=crm.base_url, headers=headers, timeout=10) as client:
        me = client.get("/api/v1/me")
        assert me.status_code == 200, me.text
        admin_id = me.json()["id"]

        invalid = client.post("/api/v1/customers", json={"firstName": "Ada"})
        problem = assert_problem(invalid, 422, "VALIDATION_ERROR")
        assert "email" in [e["field"] for e in problem["errors"]]

        created = client.post(
            "/api/v1/customers",
            json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
            headers={"X-Request-ID": "e2e-embedded-create"},
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "e2e-embedded-create"
        customer = created.json()
        assert customer["fullName"] == "Ada Lovelace"
        assert customer["status"] == "LEAD"
        assert created.headers["location"] == f"/api/v1/customers/{customer['id']}"
        # Nothing was half-written by the rejected request before it.
        listed = client.get("/api/v1/customers").json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == customer["id"]

        wait_for_note(client, customer["id"])
        time.sleep(0.3)  # give a duplicate delivery the chance to show up
        notes = customer_notes(client, customer["id"])
        assert len(notes) == 1, notes
        note = notes[0]
        assert note["type"] == "NOTE"
        assert note["system"] is True
        assert note["status"] == "COMPLETED"
        assert note["customerId"] == customer["id"]
        assert note["ownerId"] == admin_id
        assert "Ada Lovelace" in note["description"]

    crm.stop()

    # Same data folder: everything is still there, the admin is not re-created, the signing key is
    # the same (a token from before the restart still works), and the event is not handled again.
    again = crm_up(data_dir, port, **env)
    assert "admin created" not in again.stdout()
    with httpx.Client(base_url=again.base_url, headers=headers, timeout=10) as client:
        resp = client.get(f"/api/v1/customers/{customer['id']}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["customerNumber"] == customer["customerNumber"]
        time.sleep(0.3)
        after = customer_notes(client, customer["id"])
        assert [n["id"] for n in after] == [note["id"]]
        assert client.get("/api/v1/activities").json()["total"] == 1

        # The sequence carries on: customer numbers are not handed out twice after a restart.
        second = client.post(
            "/api/v1/customers",
            json={"companyName": "Analytical Engines", "type": "COMPANY", "email": "info@engines.example"},
        )
        assert second.status_code == 201, second.text
        assert second.json()["customerNumber"] != customer["customerNumber"]
        assert len(wait_for_note(client, second.json()["id"])) == 1


def test_generated_admin_password_is_printed_once_and_works(crm_up, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    crm = crm_up(data_dir, port)
    lines = [line for line in crm.stdout().splitlines() if "admin created" in line]
    assert len(lines) == 1, crm.stdout()
    # "  CRM admin created: admin@example.com / <password>"
    email, _, password = lines[0].split(":", 1)[1].strip().partition(" / ")
    assert email == ADMIN_EMAIL
    assert len(password) >= 16 and " " not in password

    with httpx.Client(base_url=crm.base_url, timeout=10) as client:
        access = token(client, password)
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == ADMIN_EMAIL
        assert "admin" in me.json()["roles"]
        wrong = client.post("/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": password + "x"})
        body = assert_problem(wrong, 400, "INVALID_CREDENTIALS")
        assert body["error"] == "invalid_grant"

    crm.stop()
    # Shown only once: the second start neither prints nor replaces it.
    again = crm_up(data_dir, port)
    assert "admin created" not in again.stdout()
    assert password not in again.stdout()
    with httpx.Client(base_url=again.base_url, timeout=10) as client:
        token(client, password)


def test_crm_down_stops_it_gracefully_and_a_second_up_is_refused(crm_up, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    crm = crm_up(data_dir, port, CRM_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert (data_dir / "crm.pid").read_text().strip() == str(crm.process.pid)
    # The default: a serving worker beside the main process where there are two cores, else none.
    workers = serving_workers(crm, default_workers())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env = {**clean, "CRM_DATA_DIR": str(data_dir), "CRM_PORT": str(free_port())}

    second = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", "up"], env=env, capture_output=True, text=True, timeout=90
    )
    assert second.returncode != 0
    assert f"already running from {data_dir}" in second.stderr and "Traceback" not in second.stderr

    down = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", "down"], env=env, capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 0, down.stderr
    assert f"CRM stopped (process {crm.process.pid}" in down.stdout
    crm.process.wait(timeout=5)
    assert all(gone(pid, 5) for pid in workers), "a serving worker outlived `crm down`"
    assert "CRM stopped: every service closed" in crm.stderr_path.read_text(), crm.logs()
    assert not (data_dir / "crm.pid").exists()

    again = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", "down"], env=env, capture_output=True, text=True, timeout=90
    )
    assert again.returncode == 0 and "No CRM is running" in again.stdout


def readme_block(heading: str) -> str:
    """The first ```sh block under a README heading, exactly as a reader would copy it."""
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index(f"\n{heading}\n") :]
    return section[section.index("```sh\n") + len("```sh\n") :].split("\n```", 1)[0]


def test_the_readme_first_call_works_as_pasted(crm_up, tmp_path):
    """Run top to bottom against a fresh `crm up`, the walkthrough shows the customer's note on its
    first read: no id pasted by hand, no empty list."""
    port = free_port()
    crm = crm_up(tmp_path / "data", port, CRM_ADMIN_PASSWORD=ADMIN_PASSWORD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"BASE": crm.base_url, "CRM_ADMIN_PASSWORD": ADMIN_PASSWORD}
    shell = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("## A first call")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    first, _, listing = shell.stdout.partition("\n")
    customer_id = first.removeprefix("customer ")
    notes = [a for a in json.loads(listing)["items"] if a["subject"] == "Customer created"]
    assert [n["customerId"] for n in notes] == [customer_id], shell.stdout


def serving_workers(crm: Crm, count: int, timeout: float = STARTUP_TIMEOUT) -> list[int]:
    """The process ids of `crm up --workers`'s serving workers, once `count` of them serve."""
    children = Path(f"/proc/{crm.process.pid}/task/{crm.process.pid}/children")
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(pid) for pid in children.read_text().split()]
        # Each process says it once: the main process, then each serving worker.
        if len(pids) == count and crm.stderr_path.read_text().count("Application startup complete") > count:
            return pids
        assert time.monotonic() < deadline, f"{count} serving worker(s) not up after {timeout}s\n{crm.logs()}"
        time.sleep(0.1)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_workers_serve_one_port_and_their_events_leave_at_once(crm_up, tmp_path):
    """`crm up --workers 2`: two processes serve the connections the main process hands them, the
    main process relays what they write as soon as they commit it (woken, not left to a 30 s poll),
    and every event is applied once."""
    data_dir, port = tmp_path / "data", free_port()
    crm = crm_up(
        data_dir, port, CRM_ADMIN_PASSWORD=ADMIN_PASSWORD, CRM_WORKERS="2", CRM_RELAY_POLL_INTERVAL="30"
    )
    assert "2 serving workers beside the events' process" in crm.stdout()
    workers = serving_workers(crm, 2)
    assert (data_dir / "crm.pid").read_text().strip() == str(crm.process.pid)
    with httpx.Client(base_url=crm.base_url, timeout=10) as anonymous:
        headers = {"Authorization": f"Bearer {token(anonymous, ADMIN_PASSWORD)}"}

    before = {pid: cpu_ticks(pid) for pid in workers}
    started = time.monotonic()
    # A new connection for each, closed before the next: the main process hands them out in turn.
    created = [
        httpx.post(
            f"{crm.base_url}/api/v1/customers",
            json={"firstName": "Ada", "lastName": f"Worker {i}", "email": f"ada{i}@example.com"},
            headers=headers,
            timeout=10,
        )
        for i in range(20)
    ]
    assert [r.status_code for r in created] == [201] * 20, [r.text for r in created if r.status_code != 201]
    with httpx.Client(base_url=crm.base_url, headers=headers, timeout=10) as client:
        for r in created:
            wait_for_note(client, r.json()["id"])
        assert time.monotonic() - started < 15, "the events waited for the relay's poll"
        time.sleep(0.3)
        for r in created:
            assert len(customer_notes(client, r.json()["id"])) == 1
        numbers = {r.json()["customerNumber"] for r in created}
        assert len(numbers) == 20
        # Any process's /metrics adds up all of theirs: the events the main process consumed are there.
        metrics = client.get("/metrics").text
        lag = re.search(r'^crm_event_lag_seconds_count\{consumer="activity"\} (\S+)$', metrics, re.M)
        assert lag is not None and float(lag.group(1)) >= 20, metrics[:2000]
        served = re.findall(
            r'^crm_http_requests_total\{method="POST",service="customer",status="201"\} (\S+)$', metrics, re.M
        )
        assert [float(n) for n in served] == [20.0], served
        # Memory and CPU are each process's own, labelled with its pid.
        resident = re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\} (\S+)$', metrics, re.M)
        assert {int(pid) for pid, _ in resident} == {crm.process.pid, *workers}, resident
    assert all(cpu_ticks(pid) > before[pid] for pid in workers), "a worker served nothing"

    down = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", "down"],
        env={**os.environ, "CRM_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    crm.process.wait(timeout=5)
    assert all(gone(pid, 5) for pid in workers), "a serving worker outlived `crm down`"
    assert "CRM stopped: every service closed" in crm.stderr_path.read_text(), crm.logs()
    assert not (data_dir / "crm.pid").exists()


def test_a_dead_serving_worker_is_replaced_and_one_outliving_the_main_process_stops(crm_up, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    crm = crm_up(data_dir, port, CRM_ADMIN_PASSWORD=ADMIN_PASSWORD, CRM_WORKERS="0")
    # No serving worker: one process does it all, nothing beside it.
    assert Path(f"/proc/{crm.process.pid}/task/{crm.process.pid}/children").read_text().split() == []
    crm.stop()

    crm = crm_up(data_dir, port, CRM_ADMIN_PASSWORD=ADMIN_PASSWORD, CRM_WORKERS="2")
    first, other = serving_workers(crm, 2)
    os.kill(first, signal.SIGKILL)
    assert gone(first, 5)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    children = Path(f"/proc/{crm.process.pid}/task/{crm.process.pid}/children")
    while not (replaced := [int(p) for p in children.read_text().split() if int(p) not in (first, other)]):
        assert time.monotonic() < deadline, f"no serving worker started again\n{crm.logs()}"
        time.sleep(0.1)
    assert "exited with -9; starting another in 0 s" in crm.stderr_path.read_text()
    with httpx.Client(base_url=crm.base_url, timeout=10) as client:
        assert client.get("/readyz").status_code == 200

    # The main process dies without a word: the serving workers it leaves behind stop by themselves.
    crm.process.kill()
    crm.process.wait(timeout=5)
    assert gone(other, 15) and gone(replaced[0], 15), "a serving worker outlived the main process"


def test_workers_must_be_zero_or_more(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATA_DIR": str(tmp_path / "data"), "CRM_PORT": str(free_port())}
    refused = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", "up", "--workers", "-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "--workers must be 0 or more" in refused.stderr and "Traceback" not in refused.stderr
