"""`crm up` leaves its process id in the data folder, so `crm down` (`make down`) can stop it from
another terminal the way Ctrl+C does: gracefully, with the outbox and databases closed."""

import os
import signal
import time
from pathlib import Path

NAME = "crm.pid"


def path(data_dir: Path) -> Path:
    return data_dir / NAME


def write(data_dir: Path) -> None:
    path(data_dir).write_text(f"{os.getpid()}\n")


def remove_if_ours(data_dir: Path) -> None:
    """At the end of a graceful stop; a pid file of another process is left alone."""
    file = path(data_dir)
    try:
        if int(file.read_text().strip()) == os.getpid():
            file.unlink()
    except (FileNotFoundError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process that has exited but not been reaped by its parent yet (a zombie) has stopped.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def running_pid(data_dir: Path) -> int | None:
    """The process id of a live `crm up` on this data folder, if any."""
    try:
        pid = int(path(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and _alive(pid) else None


def stop(data_dir: Path, *, timeout: float = 30.0) -> str:
    """Send SIGTERM to the CRM running from `data_dir` and wait for it to finish; says what happened."""
    file = path(data_dir)
    try:
        pid = int(file.read_text().strip())
    except (OSError, ValueError):
        return f"No CRM is running from {data_dir} (no {NAME})."
    if not _alive(pid):
        file.unlink(missing_ok=True)
        return f"No CRM is running from {data_dir} (process {pid} had already ended)."
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRM process {pid} did not stop within {timeout:.0f}s")
        time.sleep(0.1)
    file.unlink(missing_ok=True)
    return f"CRM stopped (process {pid}, data in {data_dir})."
