"""Logs are readable lines at a terminal and JSON everywhere else, unless a setting says otherwise."""

import io
import json
import logging

from crm_common.observability import configure_logging, json_logs_wanted, reset_request_id, set_request_id


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_unless_a_person_is_watching():
    assert json_logs_wanted(None, Terminal()) is False
    assert json_logs_wanted(None, io.StringIO()) is True
    assert json_logs_wanted("", Terminal()) is False


def test_the_setting_wins_either_way():
    assert json_logs_wanted("true", Terminal()) is True
    assert json_logs_wanted("false", io.StringIO()) is False
    assert json_logs_wanted("0", io.StringIO()) is False


def test_both_formats_carry_the_request_id(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    token = set_request_id("req-42")
    try:
        configure_logging("INFO", json_logs=False)
        logging.getLogger("crm.test").info("customer created")
        line = capsys.readouterr().err.strip()
        assert "INFO" in line and "crm.test: customer created" in line and line.endswith("[req-42]")
        configure_logging("INFO", json_logs=True)
        logging.getLogger("crm.test").info("customer created")
        entry = json.loads(capsys.readouterr().err.strip())
        assert entry["msg"] == "customer created" and entry["requestId"] == "req-42"
    finally:
        reset_request_id(token)
        root.handlers[:], level = saved
        root.setLevel(level)
