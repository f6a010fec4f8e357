"""The `crm` command's process-wide values come from the platform-wide `CRM_` names, with the
defaults the README lists, and only from those (a service's prefix does not apply)."""

from pathlib import Path

from crm_common.settings import PlatformSettings


def test_defaults_when_nothing_is_set(monkeypatch):
    for name in ("CRM_HOST", "CRM_PORT", "CRM_DATA_DIR", "CRM_DATABASE_URL", "CRM_LOG_JSON", "CRM_URL"):
        monkeypatch.delenv(name, raising=False)
    platform = PlatformSettings()
    assert platform.local_url == "http://127.0.0.1:8000"
    assert platform.data_dir == Path("data")
    assert platform.database_url is None and platform.log_json is None
    assert platform.url == "http://127.0.0.1:8000"


def test_platform_names_set_them_and_service_prefixes_do_not(monkeypatch):
    monkeypatch.setenv("CRM_HOST", "0.0.0.0")
    monkeypatch.setenv("CRM_PORT", "9123")
    monkeypatch.setenv("CRM_DATA_DIR", "/srv/crm")
    monkeypatch.setenv("CRM_GATEWAY_DATA_DIR", "/elsewhere")
    platform = PlatformSettings()
    assert platform.local_url == "http://0.0.0.0:9123"
    assert platform.data_dir == Path("/srv/crm")
