"""A real Prometheus for end-to-end tests: Debian's ``prometheus`` on 127.0.0.1, scraping the
demo shop every second, storage in a temp dir."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.alertmanager_process import free_port
from tests.e2e.tools import tool


def prometheus_config(shop_url: str) -> str:
    """Scrape the shop's sales exporter every second."""
    host = shop_url.split("://", 1)[1].rstrip("/")
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: shop
    metrics_path: /metrics/shop
    static_configs:
      - targets: ["{host}"]
"""


@contextmanager
def running_prometheus(tmp_path: Path, shop_url: str) -> Iterator[str]:
    """Run Prometheus (skip the test without the binary) and yield its URL."""
    binary = tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(shop_url))
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
