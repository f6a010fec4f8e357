"""The process metrics of `crm up`'s processes, which share their other metrics through files."""

import subprocess
import sys

from crm_common.observability import SharingProcesses
from crm_common.settings import MULTIPROCESS_DIR

WRITES_A_METRIC = (
    "from prometheus_client import Counter; Counter('crm_probe', 'probe').inc(); "
    "print('written', flush=True); import sys; sys.stdin.read()"
)


def start_writer(folder) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITES_A_METRIC],
        env={MULTIPROCESS_DIR: str(folder)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "written"
    return process


def samples(folder) -> dict[str, dict[str, float]]:
    """Sample name -> pid label -> value."""
    found: dict[str, dict[str, float]] = {}
    for family in SharingProcesses(str(folder)).collect():
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels["pid"]] = sample.value
    return found


def test_each_live_process_reports_its_memory_and_cpu_labelled_by_pid_and_a_gone_one_nothing(tmp_path):
    alive, gone = start_writer(tmp_path), start_writer(tmp_path)
    try:
        gone.communicate(timeout=10)  # it exits; its counter file stays behind
        found = samples(tmp_path)
        assert set(found["process_resident_memory_bytes"]) == {str(alive.pid)}
        assert found["process_resident_memory_bytes"][str(alive.pid)] > 1_000_000
        assert str(alive.pid) in found["process_cpu_seconds_total"]
        assert str(alive.pid) in found["process_start_time_seconds"]
        assert (tmp_path / f"counter_{gone.pid}.db").exists()
    finally:
        alive.communicate(timeout=10)
    assert samples(tmp_path) == {}
