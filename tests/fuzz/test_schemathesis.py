"""The whole API under schemathesis: every operation of the gateway's merged OpenAPI document, run
in process (ASGI) against the embedded CRM, must answer every generated input without a server
error and as its document says (status codes, content types, bodies, headers, auth).

Bounded so CI spends about a minute on it (`CRM_FUZZ_EXAMPLES` per operation, `CRM_FUZZ_MAX_TIME`
seconds in all; `CRM_FUZZ_PATHS` a regex of the paths to test); the seed is the run's date, so each day tries other cases and a failure reproduces
on the same day with `CRM_FUZZ_SEED`. Locally, for a longer hunt:

    CRM_FUZZ_EXAMPLES=200 CRM_FUZZ_MAX_TIME=1800 .venv/bin/pytest -n 0 -m fuzz -s tests/fuzz
"""

import os
from datetime import UTC, datetime

import pytest
import schemathesis
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from schemathesis.python import asgi

pytestmark = [pytest.mark.fuzz, pytest.mark.xdist_group("fuzz")]

PASSWORD = "fuzz the whole api 12"
ADMIN = "fuzz@example.com"
METHODS = {"get", "put", "post", "patch", "delete"}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
    # Every generated invalid input (negative mode: wrong types, out-of-range values, missing
    # required fields, broken formats) must be refused with a 4xx.
    "negative_data_rejection",
)
# Not `positive_data_acceptance` (yet): tried on 2026-12-06 it reported 146 schema-valid requests
# refused. Most for reasons a schema cannot carry: an Idempotency-Key the fuzzer reused with another
# body (40, 422 IDEMPOTENCY_KEY_REUSED as documented), CRM-Consistency-Token values no response gave
# (77, 400: the token is opaque), If-Match versions that are not the record's (412/428), records
# that do not exist, domain rules (422). A few are gaps in the document still open: PATCH bodies
# that document `null` for fields that cannot be cleared (`title`, `name`), NUL in query text
# (refused by design), cross-field rules (an individual needs a first or last name).


def _seed() -> int:
    return int(os.environ.get("CRM_FUZZ_SEED") or datetime.now(UTC).strftime("%Y%m%d"))


def _token(app) -> str:
    with asgi.get_client(app) as client:
        r = client.post("http://testserver/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def test_no_operation_answers_a_server_error_or_breaks_its_document(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path,
        admin_email=ADMIN,
        admin_password=PASSWORD,
        # The limiter stays on (its headers are checked) but cannot refuse the fuzzer's pace.
        rate_limit_requests=10**9,
        access_token_ttl_seconds=24 * 3600,
        log_level="WARNING",
    )
    app = create_embedded_app(settings)
    seed = _seed()
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "workers": 1,
            # Generous for a loaded CI machine (a SQLite writer can wait on an event handler's write);
            # an answer that never comes still fails the test.
            "request-timeout": 60,
            "max-time": int(os.environ.get("CRM_FUZZ_MAX_TIME", "60")),
            "generation": {
                "max-examples": int(os.environ.get("CRM_FUZZ_EXAMPLES", "5")),
                "database": "none",
                # Valid and invalid inputs both, within the same time budget.
                "mode": "all",
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": {"max-steps": 6}},
            "suppress-health-check": ["all"],
            # What one run learnt must not steer the next: the date's seed alone decides the cases.
            "cache": {"enabled": False},
        }
    )
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        if only := os.environ.get("CRM_FUZZ_PATHS"):  # a regex, to hunt one finding down
            schema = schema.include(path_regex=only)
        schema.config.headers = {"Authorization": f"Bearer {_token(app)}"}
        statistic = Statistic()
        errors: list[str] = []
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
                statistic.on_scenario_finished(event.recorder)
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.info.message}")
            elif isinstance(event, events.FatalError):
                raise event.exception
    finally:
        asgi.shutdown_lifespans()

    documented = sum(
        1 for item in schema.raw_schema["paths"].values() for method in item if method in METHODS
    )
    findings = [
        _describe(label, group)
        for label, groups in statistic.failures.items()
        for group in groups.values()
        if any(f in statistic.unique_failures_map for f in group.failures)
    ]
    print(
        f"\nschemathesis seed {seed}: {len(statistic.tested_operations)} of {documented} operations, "
        f"{statistic.total_cases} cases, {len(findings)} findings, {len(errors)} errors"
    )
    assert statistic.tested_operations, "nothing was tested"
    assert not findings, "\n\n".join(findings)
    assert not errors, "\n".join(errors)


def _describe(label: str, group) -> str:
    lines = [
        f"{label} [{group.case_id}]: " + "; ".join(f"{f.title} {f.message}".strip() for f in group.failures)
    ]
    if group.response is not None:
        lines.append(f"-> {group.response.status_code} {group.response.content[:500]!r}")
    if group.code_sample:
        lines.append(group.code_sample[:2000])
    return "\n".join(lines)
