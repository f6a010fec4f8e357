import pytest
from crm_common.concurrency import check_version, etag
from crm_common.errors import ProblemError


def test_etag_is_weak_and_carries_the_version():
    assert etag(7) == 'W/"7"'


@pytest.mark.parametrize(
    ("if_match", "body"), [('W/"3"', None), ('"3"', None), ('W/"1", W/"3"', None), ("*", None), (None, 3)]
)
def test_current_version_passes(if_match, body):
    check_version(3, if_match=if_match, body_version=body)


@pytest.mark.parametrize(("if_match", "body"), [('W/"2"', None), (None, 4), ("garbage", None)])
def test_stale_version_is_412(if_match, body):
    with pytest.raises(ProblemError) as err:
        check_version(3, if_match=if_match, body_version=body)
    assert (err.value.status, err.value.code) == (412, "VERSION_CONFLICT")
    assert err.value.extra == {"currentVersion": 3}


def test_no_version_at_all_is_428():
    with pytest.raises(ProblemError) as err:
        check_version(3, if_match=None, body_version=None)
    assert (err.value.status, err.value.code) == (428, "PRECONDITION_REQUIRED")
