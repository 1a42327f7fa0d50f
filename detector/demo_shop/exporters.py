"""The shop's metrics, one registry per exporter a real shop would run, under the names and
labels the shipped Prometheus rules (deploy/prometheus/alerts/) read.

``GET /metrics/<exporter>`` serves one of them, so Prometheus can scrape each as its own job
(the payments rules ask for ``job="payments"``, the HikariCP alert names the job);
``GET /metrics`` serves them all. The pool, relay and cluster gauges are read at scrape time.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from detector.demo_shop.database_cluster import MEMBERS, SCOPE, DatabaseCluster
from detector.demo_shop.mail_relay import MailRelay
from detector.demo_shop.payment_gateway import PROVIDER, SERVER_ADDRESS, Charge
from detector.demo_shop.pool import ConnectionPool

DATABASE = "shop"
HIKARI_POOL = "shop-checkout"
MAIL_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EXPORTERS = ("pgbouncer", "hikaricp", "ingress-nginx", "payments", "postfix", "patroni", "shop")


class _PoolCollector:
    """PgBouncer's and HikariCP's view of the one pool the shop queries through."""

    def __init__(self, pool: ConnectionPool, hikari: bool) -> None:
        self._pool = pool
        self._hikari = hikari

    def collect(self) -> Iterator[Metric]:
        g = self._pool.gauges()
        prefix, labels, values = (
            (
                "hikaricp_connections_",
                {"pool": HIKARI_POOL},
                {"active": g.active, "idle": g.idle, "pending": g.waiting, "max": g.size, "min": 0},
            )
            if self._hikari
            else (
                "pgbouncer_pools_",
                {"database": DATABASE, "user": DATABASE},
                {
                    "client_active_connections": g.active,
                    "client_waiting_connections": g.waiting,
                    "server_active_connections": g.active,
                    "server_idle_connections": g.idle,
                    "client_maxwait_seconds": g.longest_wait_seconds,
                },
            )
        )
        for name, value in values.items():
            family = GaugeMetricFamily(prefix + name, name, labels=list(labels))
            family.add_metric(list(labels.values()), value)
            yield family


class _ShowqCollector:
    """postfix_exporter's showq histogram: rebuilt from the queue at every scrape; an empty
    queue exports nothing."""

    def __init__(self, relay: MailRelay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "postfix_showq_message_age_seconds", "Age of messages in the queue", labels=["queue"]
        )
        for queue, ages in self._relay.ages().items():
            buckets = [
                (f"{bound:g}", float(sum(a <= bound for a in ages))) for bound in MAIL_BUCKETS
            ]
            buckets.append(("+Inf", float(len(ages))))
            family.add_metric([queue], buckets, sum(ages))
        yield family


class _PatroniCollector:
    """Patroni's /metrics for each member of the cluster."""

    def __init__(self, cluster: DatabaseCluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        cluster = self._cluster
        members: dict[str, Callable[[str], int]] = {
            "patroni_postgres_running": lambda _: 1,
            "patroni_primary": lambda member: int(member == cluster.primary),
            "patroni_postgres_timeline": lambda _: cluster.timeline,
        }
        for name, value in members.items():
            family = GaugeMetricFamily(name, name, labels=["scope", "name"])
            for member in MEMBERS:
                family.add_metric([SCOPE, member], value(member))
            yield family
        unlocked = GaugeMetricFamily("patroni_cluster_unlocked", "no leader", labels=["scope"])
        unlocked.add_metric([SCOPE], int(not cluster.writable))
        yield unlocked


class _IngressRequests:
    """``nginx_ingress_controller_requests``: a counter that ingress-nginx exports without the
    ``_total`` suffix, which prometheus_client would add, hence an untyped family here."""

    def __init__(self) -> None:
        self.counts: Tally[tuple[str, str, str]] = Tally()

    def collect(self) -> Iterator[Metric]:
        name = "nginx_ingress_controller_requests"
        family = Metric(name, "Requests through the ingress", "unknown")
        for (ingress, method, status), count in sorted(self.counts.items()):
            labels = {"ingress": ingress, "method": method, "status": status}
            family.add_sample(name, labels, float(count))
        yield family


class ShopMetrics:
    """Every series the shop exports, and the calls that move the counters."""

    def __init__(self, pool: ConnectionPool, relay: MailRelay, cluster: DatabaseCluster) -> None:
        self.registries = {name: CollectorRegistry() for name in EXPORTERS}
        collectors: dict[str, Collector] = {
            "pgbouncer": _PoolCollector(pool, hikari=False),
            "hikaricp": _PoolCollector(pool, hikari=True),
            "postfix": _ShowqCollector(relay),
            "patroni": _PatroniCollector(cluster),
        }
        for exporter, collector in collectors.items():
            self.registries[exporter].register(collector)
        self._requests = _IngressRequests()
        ingress = self.registries["ingress-nginx"]
        ingress.register(self._requests)
        self._request_seconds = Histogram(
            "nginx_ingress_controller_request_duration_seconds",
            "Request time at the ingress",
            ["ingress"],
            buckets=LATENCY_BUCKETS,
            registry=ingress,
        )
        payments = self.registries["payments"]
        self._gateway_seconds = Histogram(
            "http_client_request_duration_seconds",
            "Calls to the payment provider (OpenTelemetry HTTP client)",
            ["server_address", "http_request_method", "http_response_status_code", "error_type"],
            buckets=LATENCY_BUCKETS,
            registry=payments,
        )
        self._attempts = Counter(
            "payment_attempts", "Payments by outcome", ["provider", "outcome"], registry=payments
        )
        shop = self.registries["shop"]
        self._orders = Counter("shop_orders", "Orders confirmed (sales)", registry=shop)
        self._revenue = Counter("shop_revenue_cents", "Sales in cents", registry=shop)
        self._synthetic = Counter(
            "shop_synthetic_orders", "Orders confirmed for probes, not sales", registry=shop
        )

    def request(self, ingress: str, method: str, status: int, seconds: float) -> None:
        """One request answered at the ingress."""
        self._requests.counts[(ingress, method, str(status))] += 1
        self._request_seconds.labels(ingress).observe(seconds)

    def charge(self, charge: Charge, seconds: float, synthetic: bool) -> None:
        """One call to the payment provider; only real customers' attempts are sales figures."""
        status = str(charge.status)
        error = status if charge.status >= 400 else ""
        self._gateway_seconds.labels(SERVER_ADDRESS, "POST", status, error).observe(seconds)
        if not synthetic:
            self._attempts.labels(PROVIDER, charge.outcome.value).inc()

    def order_confirmed(self, total_cents: int, synthetic: bool) -> None:
        """A paid order: a sale, unless a probe placed it."""
        if synthetic:
            self._synthetic.inc()
            return
        self._orders.inc()
        self._revenue.inc(total_cents)

    def exposition(self, exporter: str | None = None) -> bytes:
        """The text format of one exporter, or of all of them."""
        names = [exporter] if exporter else list(EXPORTERS)
        return b"".join(generate_latest(self.registries[name]) for name in names)
