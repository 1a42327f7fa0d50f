"""The ``journeys:`` section: strict schema, references between steps, ``file:line`` errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from detector.probes.journey import JourneySpec
from detector.probes.jsonpath import MISSING, lookup, parse_path
from detector.probes.templating import render
from detector.ruleset.loader import RulesInvalid, load_ruleset

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"
RULE = """\
rules:
  - name: probe-failing
    match: ['alertname="SyntheticCheckoutProbeFailing"']
    severity: major
    title: Journey failing
"""
JOURNEY = """\
journeys:
  - name: checkout
    interval: 1m
    timeout: 30s
    vars: {base: "http://127.0.0.1:1", sku: SYN-1}
    steps:
      - name: cart
        method: POST
        url: "{{ vars.base }}/cart"
        json: {sku: "{{ vars.sku }}", qty: 1}
        extract:
          cart_id: {json: $.id}
          session: {cookie: session}
        assert:
          - status: [200, 201]
      - name: pay
        method: POST
        url: "{{ vars.base }}/cart/{{ steps.cart.cart_id }}/pay"
        headers: {X-Run: "{{ run.id }}"}
        assert:
          - json: $.status
            equals: authorized
          - latency_below: 2s
"""


def load_errors(tmp_path: Path, journey: str) -> list[str]:
    """The errors of a directory with one rule and ``journey``."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yml").write_text(RULE, encoding="utf-8")
    (directory / "journeys.yml").write_text(textwrap.dedent(journey), encoding="utf-8")
    with pytest.raises(RulesInvalid) as raised:
        load_ruleset(directory)
    return [str(error).removeprefix(str(directory) + "/") for error in raised.value.errors]


def test_the_shipped_example_journey_loads_and_is_off_until_its_shop_runs() -> None:
    journeys = load_ruleset(SHIPPED_RULES).journeys
    example = journeys["demo-shop-checkout"]
    assert not example.enabled
    assert [step.name for step in example.steps][-1] == "cancel"
    assert example.steps[-1].always_run


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param(
            ("{{ vars.sku }}", "{{ vars.size }}"),
            "journeys.yml:10: journeys[0].steps[0].json: unknown variable vars.size",
            id="unknown-variable",
        ),
        pytest.param(
            ("steps.cart.cart_id", "steps.cart.basket"),
            "journeys.yml:18: journeys[0].steps[1].url: steps.cart.basket: step 'cart'"
            " extracts no 'basket'",
            id="value-not-extracted",
        ),
        pytest.param(
            ("steps.cart.cart_id", "steps.pay.order"),
            "journeys.yml:18: journeys[0].steps[1].url: steps.pay.order: no earlier step is"
            " named 'pay'",
            id="value-from-a-later-step",
        ),
        pytest.param(
            ("{{ run.id }}", "{{ order_id }}"),
            "journeys.yml:19: journeys[0].steps[1].headers.X-Run: unknown name 'order_id'"
            " (use steps, vars, run)",
            id="bare-name",
        ),
        pytest.param(
            ("            equals: authorized", "            greater_than: 3"),
            "journeys.yml:22: journeys[0].steps[1].assert[0].greater_than: unknown field",
            id="unknown-assertion",
        ),
        pytest.param(
            ("          - latency_below: 2s", "          - latency_above: 2s"),
            "journeys.yml:23: journeys[0].steps[1].assert[1].latency_above: unknown field",
            id="unknown-assertion-subject",
        ),
        pytest.param(
            ("interval: 1m", "interval: 10s"),
            "journeys.yml:2: journeys[0]: interval must not be shorter than timeout: runs would"
            " overlap and the journey would run less often than its interval says",
            id="interval-shorter-than-timeout",
        ),
        pytest.param(
            ("{json: $.id}", "{json: id}"),
            "journeys.yml:12: journeys[0].steps[0].extract.cart_id.json: JSON path"
            " 'id' must start with $ (like $.items[0].id)",
            id="bad-json-path",
        ),
        pytest.param(
            ("{cookie: session}", "{cookie: session, header: Set-Cookie}"),
            "journeys.yml:13: journeys[0].steps[0].extract.session: give exactly one of json,"
            " regex, header, cookie",
            id="two-extraction-sources",
        ),
        pytest.param(
            ("          - status: [200, 201]", "          - status: 200\n            exists: true"),
            "journeys.yml:15: journeys[0].steps[0].assert[0]: status takes no exists",
            id="status-with-a-comparison",
        ),
        pytest.param(
            ("            equals: authorized", "            equals: a\n            contains: b"),
            "journeys.yml:21: journeys[0].steps[1].assert[0]: json needs exactly one of equals,"
            " contains, exists",
            id="two-comparisons",
        ),
        pytest.param(
            ('{{ vars.base }}/cart"', '{{ vars.base }/cart"'),
            "journeys.yml:9: journeys[0].steps[0].url: invalid template: unexpected '}'",
            id="template-syntax",
        ),
        pytest.param(
            ("    vars:", "    labels: {location: eu}\n    vars:"),
            "journeys.yml:2: journeys[0]: labels: location are set by the prober",
            id="reserved-label",
        ),
        pytest.param(
            ("      - name: pay", "      - name: cart"),
            "journeys.yml:16: journeys[0].steps[1].name: duplicate step name 'cart'",
            id="duplicate-step",
        ),
    ],
)
def test_journey_errors_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], error: str
) -> None:
    assert change[0] in JOURNEY
    assert load_errors(tmp_path, JOURNEY.replace(*change)) == [error]


def test_a_valid_journey_keeps_its_steps_in_order(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yml").write_text(RULE + JOURNEY)
    journey = load_ruleset(directory).journeys["checkout"]
    assert isinstance(journey, JourneySpec)
    assert [s.name for s in journey.steps] == ["cart", "pay"]
    assert journey.steps[0].extract["cart_id"].json_path == "$.id"
    assert journey.steps[1].assertions[0].equals == "authorized"
    assert (journey.failure_threshold, journey.success_threshold, journey.retries) == (3, 2, 1)


@pytest.mark.parametrize(
    ("path", "document", "value"),
    [
        ("$", {"a": 1}, {"a": 1}),
        ("$.items[0].id", {"items": [{"id": "c-1"}]}, "c-1"),
        ("$.items[-1]", {"items": [1, 2]}, 2),
        ('$["order-id"]', {"order-id": 7}, 7),
        ("$.items[2]", {"items": [1]}, MISSING),
        ("$.a.b", {"a": "text"}, MISSING),
        ("$.a", [1], MISSING),
    ],
)
def test_json_paths(path: str, document: object, value: object) -> None:
    assert lookup(document, path) == value or lookup(document, path) is value


@pytest.mark.parametrize("path", ["items", "$.", "$[x]", "$.a b"])
def test_bad_json_paths(path: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        parse_path(path)


def test_templates_read_steps_vars_and_run_and_nothing_else() -> None:
    context = {"steps": {"cart": {"id": "c-1"}}, "vars": {}, "run": {"id": "r"}}
    assert render("/cart/{{ steps.cart.id }}?run={{ run.id }}", context) == "/cart/c-1?run=r"
    with pytest.raises(ValueError, match=r"no attribute .pay."):
        render("{{ steps.pay.order_id }}", context)
    with pytest.raises(ValueError, match=r"unsafe|not safely|access"):
        render("{{ run.__class__.__mro__ }}", context)
