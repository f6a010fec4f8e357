"""Pure functions: signatures (against the Standard Webhooks spec's own example), the SSRF guard's
decisions, event-type patterns and filters. No database, no network."""

import ipaddress
from datetime import UTC, datetime

import pytest
from crm_common.errors import ProblemError
from standardwebhooks import Webhook
from webhook_svc.service import patterns, signing
from webhook_svc.service.targets import Guard, TargetForbidden, split_target

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIME = datetime.fromtimestamp(1614265330, UTC)
SPEC_BODY = b'{"test": 2432232314}'


def test_the_signature_is_the_specification_example():
    header = signing.signature_header([SPEC_SECRET], msg_id=SPEC_ID, timestamp=SPEC_TIME, body=SPEC_BODY)
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_two_secrets_give_two_signatures_each_verifiable():
    old, new = signing.new_secret(), signing.new_secret()
    now = datetime.now(UTC)
    headers = signing.headers([new, old], msg_id="evt-1", timestamp=now, body=b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(b"{}", headers) == {}
    with pytest.raises(Exception, match="signature"):
        Webhook(signing.new_secret()).verify(b"{}", headers)


def test_secrets_are_fresh_and_well_formed():
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith("whsec_") and len(a) == len("whsec_") + 44


def resolver(table):
    async def resolve(host, port):
        if host not in table:
            raise OSError("not known")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("host", "addresses", "refused"),
    [
        ("public.test", ["93.184.216.34"], None),
        ("public6.test", ["2606:2800:220:1:248:1893:25c8:1946"], None),
        ("mixed.test", ["93.184.216.34", "10.1.1.1"], "private"),
        ("meta.test", ["169.254.169.254"], "metadata"),
        ("gcp.test", ["169.254.169.254"], "metadata"),
        ("mapped.test", ["::ffff:127.0.0.1"], "loopback"),
        ("zero.test", ["0.0.0.0"], "private"),
        ("cgnat.test", ["100.64.1.1"], "not a public address"),
        ("docs.test", ["2001:db8::1"], "private"),
        ("gone.test", None, "does not resolve"),
    ],
)
async def test_the_guard_checks_every_resolved_address(host, addresses, refused):
    guard = Guard(resolve=resolver({host: addresses} if addresses else {}))
    if refused is None:
        assert await guard.addresses(host, 443) == addresses
    else:
        with pytest.raises(TargetForbidden, match=refused):
            await guard.addresses(host, 443)


async def test_allowed_networks_let_private_targets_through_but_never_metadata():
    guard = Guard(
        allowed_networks=[ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("169.254.0.0/16")],
        resolve=resolver({"erp.corp": ["10.2.3.4"]}),
    )
    assert await guard.addresses("erp.corp", 80) == ["10.2.3.4"]
    with pytest.raises(TargetForbidden, match="metadata"):
        await guard.addresses("169.254.169.254", 80)
    with pytest.raises(TargetForbidden, match="private"):
        await guard.addresses("192.168.1.1", 80)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "https:// or http://"),
        ("gopher://x.test/", "https:// or http://"),
        ("https:///path", "no host"),
        ("https://a:b@x.test/", "credentials"),
        ("https://x.test:99999/", "port"),
    ],
)
def test_only_plain_http_urls_are_targets(url, reason):
    with pytest.raises(ValueError, match=reason):
        split_target(url)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("customer.*", "customer.created", True),
        ("customer.*", "opportunity.won", False),
        ("*.created", "ticket.created", True),
        ("*", "opportunity.stage_changed", True),
        ("#", "opportunity.stage_changed", True),
        ("opportunity.won", "opportunity.won", True),
        ("opportunity.won", "opportunity.lost", False),
    ],
)
def test_event_type_patterns(pattern, key, expected):
    assert patterns.matches([pattern], key) is expected


def test_patterns_must_match_a_published_event():
    assert patterns.check_event_types(["customer.*", "customer.*", "opportunity.won"]) == [
        "customer.*",
        "opportunity.won",
    ]
    with pytest.raises(ProblemError) as refused:
        patterns.check_event_types(["customer.*", "invoice.paid", "bad key!"])
    assert [e.field for e in refused.value.errors] == ["eventTypes.1", "eventTypes.2"]


def test_filters_compare_json_values():
    event = {"subject": "abc", "data": {"status": "CUSTOMER", "amount": "10.00", "count": 3, "vip": True}}
    assert patterns.filter_matches(None, event)
    assert patterns.filter_matches({"data.status": ["LEAD", "CUSTOMER"], "subject": "abc"}, event)
    assert not patterns.filter_matches({"data.status": "LEAD"}, event)
    assert not patterns.filter_matches({"data.count": "3"}, event)
    assert not patterns.filter_matches({"data.vip": 1}, event)
    assert not patterns.filter_matches({"data.missing": None}, event)
    assert patterns.filter_matches({"data.count": 3, "data.vip": True}, event)
