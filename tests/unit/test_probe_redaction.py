"""What a failed step's answer shows on a timeline: trimmed, with secrets and tokens removed."""

from __future__ import annotations

import pytest

from detector.probes.redaction import KEPT_CHARS, REDACTED, redact_body


@pytest.mark.parametrize(
    ("body", "secrets", "kept", "gone"),
    [
        pytest.param(
            b'{"error": "declined", "client_secret": "pi_3N_secret_x", "card": {"number": "4242"}}',
            (),
            ['"error": "declined"', f'"client_secret": "{REDACTED}"', f'"card": "{REDACTED}"'],
            ["pi_3N_secret_x", "4242"],
            id="json-fields-by-name",
        ),
        pytest.param(
            b'{"items": [{"sessionId": "s-123456", "sku": "umbrella"}], "csrf": null}',
            (),
            ['"sku": "umbrella"', '"csrf": null'],
            ["s-123456"],
            id="nested-json",
        ),
        pytest.param(
            b"<p>Authorization: Bearer sk_live_51Habc</p><input name=csrf_token value=9f8e7d6c>",
            (),
            ["<p>Authorization:"],
            ["sk_live_51Habc", "9f8e7d6c"],
            id="text-pairs-and-bearer",
        ),
        pytest.param(
            b"upstream said: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
            b" and 4000 0000 0000 0002",
            (),
            ["upstream said:"],
            ["eyJhbGciOiJIUzI1NiJ9", "4000 0000 0000 0002"],
            id="jwt-and-card-number",
        ),
        pytest.param(
            b'{"message": "order for cart c-77aa99 failed"}',
            ("c-77aa99",),
            ["order for cart", REDACTED],
            ["c-77aa99"],
            id="values-this-run-extracted-as-secrets",
        ),
    ],
)
def test_secrets_are_redacted(
    body: bytes, secrets: tuple[str, ...], kept: list[str], gone: list[str]
) -> None:
    text = redact_body(body, secrets)
    for part in kept:
        assert part in text
    for part in gone:
        assert part not in text


def test_long_answers_are_trimmed() -> None:
    text = redact_body(b"x" * 10_000)
    assert len(text) == KEPT_CHARS
    assert text.endswith("…")
