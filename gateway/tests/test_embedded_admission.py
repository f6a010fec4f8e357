"""The embedded default's queue target (docs/operations.md, "Capacity and overload")."""

import pytest
from crm_gateway.embedded import EMBEDDED_TARGET_WAIT_SECONDS, create_embedded_app


def _target_waits(app) -> list[float]:
    return [m.kwargs["target_wait"] for m in app.user_middleware if m.cls.__name__ == "AdmissionMiddleware"]


def test_the_one_process_uses_the_shorter_queue_target_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CRM_ADMISSION_TARGET_WAIT_SECONDS", raising=False)
    monkeypatch.delenv("CRM_GATEWAY_ADMISSION_TARGET_WAIT_SECONDS", raising=False)
    app = create_embedded_app()
    assert _target_waits(app) == [EMBEDDED_TARGET_WAIT_SECONDS] == [0.1]
    assert {name: _target_waits(svc) for name, svc in app.state.services.items()} == {
        name: [0.1] for name in app.state.services
    }


@pytest.mark.parametrize(
    "variable", ["CRM_ADMISSION_TARGET_WAIT_SECONDS", "CRM_GATEWAY_ADMISSION_TARGET_WAIT_SECONDS"]
)
def test_an_operators_setting_wins(tmp_path, monkeypatch, variable):
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CRM_ADMISSION_TARGET_WAIT_SECONDS", raising=False)
    monkeypatch.setenv(variable, "0.3")
    app = create_embedded_app()
    assert _target_waits(app) == [0.3]
    if variable == "CRM_ADMISSION_TARGET_WAIT_SECONDS":
        assert _target_waits(app.state.services["customer"]) == [0.3]
