"""The pure half of a step, as a table: an answer in, the one failure reason (or none) and the
extracted values out."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from detector.probes.evaluation import evaluate
from detector.probes.journey import ProbeStepSpec
from detector.probes.outcome import FailureReason, Response

BODY = b'{"id": "o-1", "status": "confirmed", "total": 42, "items": [{"sku": "umbrella"}]}'


def answer(status: int = 200, body: bytes = BODY, latency: float = 0.1, **headers: str) -> Response:
    return Response(
        status=status,
        headers=CIMultiDict({"Content-Type": "application/json", **headers}),
        body=body,
        cookies={"session": "s-1"},
        latency_s=latency,
    )


def step(**fields: Any) -> ProbeStepSpec:
    return ProbeStepSpec.model_validate({"name": "s", "url": "http://shop.invalid/", **fields})


R = FailureReason


@pytest.mark.parametrize(
    ("fields", "response", "reason", "detail"),
    [
        ({}, answer(), None, ""),
        ({}, answer(302), None, ""),  # without a status check, below 400 passes
        ({}, answer(500), R.HTTP_STATUS, "status 500"),
        ({"assert": [{"status": 404}]}, answer(404), None, ""),
        (
            {"assert": [{"status": [200, 201]}]},
            answer(503),
            R.HTTP_STATUS,
            "status 503, want 200 or 201",
        ),
        ({"assert": [{"json": "$.status", "equals": "confirmed"}]}, answer(), None, ""),
        ({"assert": [{"json": "$.total", "equals": "42"}]}, answer(), None, ""),
        (
            {"assert": [{"json": "$.total", "equals": 41}]},
            answer(),
            R.ASSERTION,
            "$.total: 42, want 41",
        ),
        ({"assert": [{"json": "$.items[0].sku", "contains": "umb"}]}, answer(), None, ""),
        (
            {"assert": [{"json": "$.client_secret", "equals": "pi_expected"}]},
            answer(body=b'{"client_secret": "pi_live_secret_123"}'),
            R.ASSERTION,
            "$.client_secret: not the expected value",
        ),
        ({"assert": [{"json": "$.coupon", "exists": False}]}, answer(), None, ""),
        (
            {"assert": [{"json": "$.id", "exists": False}]},
            answer(),
            R.ASSERTION,
            "$.id: exists is true",
        ),
        (
            {"assert": [{"json": "$.status", "equals": "x"}]},
            answer(body=b"<html>"),
            R.ASSERTION,
            "$.status: not found",
        ),
        ({"assert": [{"header": "content-type", "contains": "json"}]}, answer(), None, ""),
        (
            {"assert": [{"header": "X-Cache", "exists": True}]},
            answer(),
            R.ASSERTION,
            "header X-Cache: exists is false",
        ),
        ({"assert": [{"body": True, "contains": "umbrella"}]}, answer(), None, ""),
        (
            {"assert": [{"latency_below": "100ms"}]},
            answer(latency=0.25),
            R.ASSERTION,
            "latency 0.250s, want below 0.1s",
        ),
        (  # the status decides before the body is looked at
            {"assert": [{"json": "$.status", "equals": "confirmed"}, {"status": 200}]},
            answer(502, b"bad gateway"),
            R.HTTP_STATUS,
            "status 502, want 200",
        ),
        (
            {"extract": {"order": {"json": "$.missing"}}},
            answer(),
            R.EXTRACTION,
            "order: JSON path $.missing found nothing",
        ),
        (
            {"extract": {"csrf": {"regex": 'csrf="(\\w+)"'}}},
            answer(),
            R.EXTRACTION,
            "csrf: regex 'csrf=\"(\\\\w+)\"' found nothing",
        ),
    ],
)
def test_verdicts(
    fields: dict[str, Any], response: Response, reason: FailureReason | None, detail: str
) -> None:
    verdict = evaluate(step(**fields), response)
    assert (verdict.reason, verdict.detail) == (reason, detail)


def test_extracted_values() -> None:
    extract = {
        "order": {"json": "$.id"},
        "first_sku": {"json": "$.items[0].sku"},
        "total": {"json": "$.total"},
        "state": {"regex": '"status": "(\\w+)"'},
        "whole": {"regex": "o-\\d"},
        "kind": {"header": "content-type"},
        "session": {"cookie": "session"},
    }
    verdict = evaluate(step(extract=extract), answer())
    assert verdict.reason is None
    assert dict(verdict.values) == {
        "order": "o-1",
        "first_sku": "umbrella",
        "total": 42,
        "state": "confirmed",
        "whole": "o-1",
        "kind": "application/json",
        "session": "s-1",
    }
