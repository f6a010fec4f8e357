"""`make distributed` honours the same variables as the embedded default."""

from pathlib import Path

from crm_gateway.distributed import options_from_env


def test_defaults_put_the_services_on_the_ports_after_the_gateway():
    options = options_from_env({})
    assert options["gateway_port"] == 8000 and options["service_base_port"] == 8001
    assert options["events_namespace"] == "" and options["host"] == "127.0.0.1"
    assert options["data_dir"] == Path("data")


def test_port_namespace_and_host_are_honoured():
    options = options_from_env(
        {
            "CRM_PORT": "9100",
            "CRM_EVENTS_NAMESPACE": "second.",
            "CRM_HOST": "127.0.0.2",
            "CRM_DATA_DIR": "/tmp/x",
        }
    )
    assert options["gateway_port"] == 9100 and options["service_base_port"] == 9101
    assert options["events_namespace"] == "second."
    assert options["host"] == "127.0.0.2" and options["data_dir"] == Path("/tmp/x")


def test_an_explicit_service_base_port_wins():
    options = options_from_env({"CRM_PORT": "9100", "CRM_SERVICE_BASE_PORT": "9200"})
    assert options["gateway_port"] == 9100 and options["service_base_port"] == 9200
