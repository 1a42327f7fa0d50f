"""The demo's Prometheus: Debian's ``prometheus`` binary, when installed, scraping the demo
shop's sales every second, so the story can show orders and revenue at risk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from detector.demo.sinks import free_port

HOW_TO_ADD = "install it to see orders and revenue at risk: sudo apt-get install prometheus"
CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: demo-shop
    metrics_path: /metrics/shop
    static_configs:
      - targets: ["{target}"]
"""


class ShopPrometheus:
    """One Prometheus process in ``directory``; ``url`` once started."""

    def __init__(self, directory: Path, shop_url: str) -> None:
        self._directory = directory
        self._target = shop_url.split("://", 1)[1].rstrip("/")
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @staticmethod
    def available() -> bool:
        """Whether the binary is on PATH."""
        return shutil.which("prometheus") is not None

    def start(self) -> ShopPrometheus:
        """Start it on a free loopback port (its log goes to ``prometheus.log``)."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError(HOW_TO_ADD)
        self._directory.mkdir(parents=True, exist_ok=True)
        config = self._directory / "prometheus.yml"
        config.write_text(CONFIG.format(target=self._target))
        port = free_port()
        self._process = subprocess.Popen(  # noqa: S603 - a fixed binary and arguments
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._directory / "prometheus.log").open("w"),
        )
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop it (and wait, bounded)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
