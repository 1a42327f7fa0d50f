"""What the demo runs against: its rules directory (the shop's checkout journey on a short
interval, a rule that opens, pages and tells customers, the shop's sales as impact queries) and
the faults the journey can see."""

from __future__ import annotations

from pathlib import Path

from detector.demo_shop.faults import Fault

JOURNEY_INTERVAL_S = 5
QUIET_PERIOD_S = 10
STORIES: dict[Fault, str] = {
    Fault.PAYMENT_DOWN: "The payment provider answers 503: every payment fails.",
    Fault.POOL_EXHAUSTION: "A runaway job holds every database connection: requests fail.",
    Fault.FAILOVER_STUCK: "The database lost its primary and no replica took over.",
    Fault.LATENCY: "Every page of the shop takes two seconds longer.",
}
"""The faults a checkout journey notices (a stuck mail relay shows only in its own metrics)."""

RULES = """\
components:
  - name: checkout
    display_name: Checkout
    description: Placing orders, from cart to order confirmation.
    impact:
      orders: sum(rate(shop_orders_total[10s]))
      revenue: sum(rate(shop_revenue_cents_total[10s])) / 100
      baseline: hour
channels:
  - name: on-call-pager
    type: webhook
    url: {page_url}
escalation_policies:
  - name: on-call
    steps:
      - notify: [on-call-pager]
rules:
  - name: checkout-journey-failing
    description: The demo shop's checkout journey keeps failing.
    match: ['alertname="SyntheticCheckoutProbeFailing"']
    group_by: [journey]
    severity: major
    title: "Checkout journey failing ({{{{ labels.location }}}})"
    summary: "{{{{ annotations.summary }}}}"
    component: checkout
    escalation_policy: on-call
    notice:
      publish: immediately
      impact: Some customers cannot complete their order.
      still_works: Your cart is kept, and no card is charged for a failed order.
notices:
  quiet_period: {quiet}s
journeys:
  - name: demo-checkout
    interval: {interval}s
    timeout: {interval}s
    step_timeout: 2s
    retries: 0
    failure_threshold: 2
    success_threshold: 2
    vars: {{base: "{shop_url}", sku: umbrella, card: "4242424242424242"}}
    steps:
      - name: product
        url: "{{{{ vars.base }}}}/api/products/{{{{ vars.sku }}}}"
        assert: [{{status: 200}}, {{latency_below: 800ms}}]
      - name: cart
        method: POST
        url: "{{{{ vars.base }}}}/api/cart/items"
        json: {{sku: "{{{{ vars.sku }}}}", quantity: 1}}
        assert: [{{status: 200}}]
      - name: checkout
        method: POST
        url: "{{{{ vars.base }}}}/api/checkout"
        json: {{email: "synthetic+{{{{ run.id }}}}@shop.invalid"}}
        assert: [{{status: 201}}]
        extract:
          order_id: {{json: $.order_id}}
      - name: pay
        method: POST
        url: "{{{{ vars.base }}}}/api/orders/{{{{ steps.checkout.order_id }}}}/payment"
        json: {{card_number: "{{{{ vars.card }}}}"}}
        assert: [{{status: 200}}, {{json: $.status, equals: confirmed}}]
"""


def write_rules(directory: Path, shop_url: str, page_url: str) -> Path:
    """Write the demo's rules into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    text = RULES.format(
        page_url=page_url, shop_url=shop_url, interval=JOURNEY_INTERVAL_S, quiet=QUIET_PERIOD_S
    )
    (directory / "demo.yml").write_text(text)
    return directory
