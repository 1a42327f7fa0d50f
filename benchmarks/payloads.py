"""Alertmanager 0.25 webhooks as Go writes them, and which one to send next.

A request is kept as a template split at the group number, so rendering one costs a join; a
share of the requests are byte-identical replays of recent groups, as Alertmanager sends on
retries, repeat intervals and from HA peers.
"""

from __future__ import annotations

import json
import random
from collections import deque

WEBHOOK_PATH = "/api/v1/alertmanager"
REPLAY_WINDOW = 256  # replays repeat one of the last groups sent, as retries and repeats do
GROUP_MARK = "~G~"  # where the 10-hex-digit group number goes in a payload template
ZERO_TIME = "0001-01-01T00:00:00Z"  # endsAt of every firing alert in a webhook
GROUPS = (
    ("HighRequestLatency", "checkout"),
    ("KubePodCrashLooping", "cart"),
    ("HTTPErrorRateHigh", "payments"),
    ("NodeFilesystemSpaceFillingUp", "search"),
    ("RedisMemoryHigh", "sessions"),
    ("KafkaConsumerLagHigh", "orders"),
    ("CertificateExpiringSoon", "storefront"),
    ("QueueBacklogGrowing", "order-emails"),
)


def _alert(
    name: str, service: str, index: int, tag: str, times: tuple[str, str]
) -> dict[str, object]:
    """One alert as Alertmanager 0.25 writes it; every fifth one has resolved."""
    resolved = index % 5 == 4
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {
            "alertname": name,
            "cluster": "eu-prod-1",
            "instance": f"10.1.{index // 250}.{index % 250}:9100",
            "job": service,
            "namespace": "shop",
            "pod": f"{service}-{GROUP_MARK}-{index:04d}",
            "service": service,
            "severity": "warning",
        },
        "annotations": {
            "summary": f"{name} on {service} pod {index}",
            "description": f"{name} has been active for {service} in eu-prod-1 for 5 minutes.",
            "runbook_url": f"https://runbooks.example.com/{service}/{name}",
        },
        "startsAt": times[0],
        "endsAt": times[1] if resolved else ZERO_TIME,
        "generatorURL": f"http://prometheus.example.internal:9090/graph?g0.expr={name}&g0.tab=1",
        "fingerprint": f"{tag}{GROUP_MARK}{index:04x}",
    }


def request_template(
    variant: int, alerts: int, tag: str, times: tuple[str, str], authority: str, token: str
) -> tuple[str, ...]:
    """A whole HTTP request split at the group number, so rendering one costs a join.

    The body is Go's compact JSON with ``&`` escaped and a trailing newline; the fingerprint is
    ``tag`` (run and worker) + group + alert index, so every group's alerts are distinct.
    """
    name, service = GROUPS[variant % len(GROUPS)]
    labels = {"alertname": name, "service": service}
    body = {
        "receiver": "stormwatch",
        "status": "firing",
        "alerts": [_alert(name, service, i, tag, times) for i in range(alerts)],
        "groupLabels": {**labels, "group": GROUP_MARK},
        "commonLabels": {**labels, "cluster": "eu-prod-1", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.internal:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity="warning"}}:{{alertname="{name}", group="{GROUP_MARK}"}}',
        "truncatedAlerts": 0,
    }
    text = (json.dumps(body, separators=(",", ":")) + "\n").replace("&", "\\u0026")
    length = len(text) + (text.count(GROUP_MARK) * (10 - len(GROUP_MARK)))
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: Alertmanager/0.25.0\r\n"
        f"Content-Length: {length}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    return tuple((head + text).split(GROUP_MARK))


class Feed:
    """What to send next: fresh groups in order, and a share of byte-identical replays.

    Requests are rendered on demand (a join) instead of being stored, so memory stays flat
    however long the run; a replay re-renders an earlier group number, which gives the same bytes.
    """

    def __init__(
        self, templates: list[tuple[str, ...]], replay_share: float, seed: int, limit: int
    ) -> None:
        self._templates = templates
        self._replay_share = replay_share
        self._rng = random.Random(seed)
        self._recent: deque[int] = deque(maxlen=REPLAY_WINDOW)
        self._next_group = 0
        self._left = limit

    def next(self) -> tuple[int, bytes] | None:
        """The group number and request bytes, or None once the count bound is reached."""
        if self._left <= 0:
            return None
        self._left -= 1
        if self._recent and self._rng.random() < self._replay_share:
            group = self._recent[self._rng.randrange(len(self._recent))]
        else:
            group = self._next_group
            self._next_group += 1
            self._recent.append(group)
        parts = self._templates[group % len(self._templates)]
        return group, f"{group:010x}".join(parts).encode()
