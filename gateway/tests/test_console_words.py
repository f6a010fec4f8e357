"""The console's own words exist in Chinese: every text the templates and pages put through `t()` /
`translate()`, and the labels and choices the pages pass to them."""

import re
from pathlib import Path

import pytest
from crm_gateway.console import (
    agenda_pages,
    campaign_pages,
    customer_actions,
    customer_pages,
    ticket_pages,
    words,
)

CONSOLE = Path(words.__file__).parent
# A literal put through t() (not one a template joins with `~` to build a key, such as "sort:").
LITERAL = re.compile(r"""\bt\(\s*(?:"([^"]+)"|'([^']+)')(?!\s*~)""")


def _texts() -> set[str]:
    found = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        for double, single in LITERAL.findall(template.read_text()):
            found.add(double or single)
    for module in CONSOLE.glob("*.py"):
        source = module.read_text()
        found |= set(re.findall(r'translate\(\s*"([^"]+)"', source))
        found |= set(re.findall(r"ctx\.translate\(\s*\{[^}]*\}", source) and [])
    # What pages pass through t() as values: labels, choices and the keys built in templates.
    found |= {label for _, label, choices in customer_actions.EDIT_FIELDS} | {
        c for _, _, choices in customer_actions.EDIT_FIELDS for c in choices
    }
    found |= (
        set(customer_pages.MERGE_FIELDS) | set(customer_pages.COMBINABLE) | set(customer_pages.ACTIVITY_TYPES)
    )
    found |= set(customer_pages.NOTICES.values())
    found |= (
        set(ticket_pages.STATUSES) | set(ticket_pages.PRIORITIES) | {f"sort:{s}" for s in ticket_pages.SORTS}
    )
    found |= {"First response", "Resolution", "Status changed.", "Added to the conversation."}
    found |= {"QUESTION", "PROBLEM", "REQUEST", "INCIDENT", "INBOUND", "OUTBOUND"}
    found |= {"EMAIL", "PHONE", "CHAT", "PORTAL", "NOTE", "Won", "Open", "Marked done."}
    found |= {label for _, label in agenda_pages.BUCKETS}
    found |= (
        set(campaign_pages.STATUSES)
        | set(campaign_pages.TYPES)
        | {label for _, label in campaign_pages.STEPS}
    )
    found |= {f"action:{a}" for a in campaign_pages.ACTIONS}
    return found


def test_every_console_text_has_its_chinese():
    missing = sorted(text for text in _texts() if text not in words.ZH)
    assert not missing, f"no Chinese for: {missing}"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "Page 2 of 5"), ("zh", "第 2 页，共 5 页")],  # noqa: RUF001
)
def test_translate_fills_in_values_in_either_language(language, expected):
    assert words.translate("Page {page} of {pages}", language, page=2, pages=5) == expected


def test_keys_built_by_templates_have_their_english():
    keyed = {text for text in _texts() if ":" in text and not text.endswith(":") and " " not in text}
    assert keyed and not keyed - set(words.EN)


def test_the_merge_rules_name_fields_in_words_in_both_languages():
    for field in (*customer_pages.MERGE_FIELDS, *customer_pages.COMBINABLE):
        english = words.translate(field, "en")
        assert english != field and english[0].isupper(), field
        assert words.translate(field, "zh") != field


def test_an_unknown_text_shows_in_english_rather_than_nothing():
    assert words.translate("Brand new words", "zh") == "Brand new words"
