"""Alert targets: validation on save and masking wherever a target is shown."""

from __future__ import annotations

import pytest

from backend.alerts.targets import mask, validate_target, validate_targets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T000/B000/XXXX…",
        ),
        ("tgram://123456789:AAbbCCddEEff/987654", "tgram://1234…/9876…"),
        ("http://127.0.0.1:9000/hook?token=abc&x=1", "http://127.0.0.1:9000/hook?token=****&x=****"),
        ("mailto://user:pw@gmail.com", "mailto://user:****@gmail.com"),
        ("https://user:secret@example.com/a", "https://user:****@example.com/a"),
    ],
)
def test_targets_are_shown_masked(url: str, shown: str) -> None:
    assert mask(url) == shown


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("hello", "'hello' is not a URL: use https://… for a webhook or an Apprise URL such as tgram://…"),
        ("https:///x", "'https:///x' has no host"),
        ("foo://bar", "foo:// is not a URL Apprise can deliver to (see the Apprise wiki for its URL forms)"),
        ("", "a target is a URL of 1 to 2048 characters"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_target(url)
    assert str(info.value) == reason


def test_good_targets_pass_and_duplicates_collapse() -> None:
    urls = ["https://example.com/h", "tgram://123456789:AAbbCCddEEff/987654", " https://example.com/h "]
    assert validate_targets(urls) == urls[:2]
    with pytest.raises(ValueError, match="at most 10 targets per rule"):
        validate_targets([f"https://example.com/{i}" for i in range(11)])
