"""Per-phase timings of one request from aiohttp's trace hooks: resolve, connect, tls,
processing (request sent to first byte) and transfer, as blackbox_exporter reports them.

aiohttp has no hook between the TCP connect and the TLS handshake, so the handshake's start is
taken from the SSL context: asyncio wraps the socket (``SSLContext.wrap_bio``) right after the
TCP connect, in the task that asked for the connection, where the request's recorder is known.
A reused keep-alive connection has no resolve, connect or tls phase.
"""

from __future__ import annotations

import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from detector.probes.outcome import Phase

_RECORDING: ContextVar[PhaseRecorder | None] = ContextVar("probe_phase_recorder", default=None)


@dataclass(slots=True)
class PhaseRecorder:
    """The moments one request passed through; ``phases`` turns them into durations."""

    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        """Note that ``name`` happened now (the first time only: retries keep their own)."""
        self.marks.setdefault(name, time.perf_counter())

    def __enter__(self) -> PhaseRecorder:
        self._token = _RECORDING.set(self)
        self.mark("start")
        return self

    def __exit__(self, *_: object) -> None:
        _RECORDING.reset(self._token)

    def phases(self) -> dict[str, float]:
        """Seconds per phase, for the phases this request went through."""
        m = self.marks
        result: dict[str, float] = {}
        if "dns_end" in m and "dns_start" in m:
            result[Phase.RESOLVE] = m["dns_end"] - m["dns_start"]
        if "connected" in m and "connecting" in m:
            result.setdefault(Phase.RESOLVE, 0.0)  # an address needs no lookup
            handshake = m["connected"] - m["tls_start"] if "tls_start" in m else 0.0
            connect = m["connected"] - m["connecting"] - result.get(Phase.RESOLVE, 0.0)
            result[Phase.CONNECT] = max(connect - handshake, 0.0)
            if "tls_start" in m:
                result[Phase.TLS] = handshake
        if "first_byte" in m:
            sent = m.get("sent", m.get("connected", m["start"]))
            result[Phase.PROCESSING] = max(m["first_byte"] - sent, 0.0)
            if "end" in m:
                result[Phase.TRANSFER] = max(m["end"] - m["first_byte"], 0.0)
        return result

    _token: Any = None


class TimedSSLContext(ssl.SSLContext):
    """An SSL context that notes when a handshake starts for the request being recorded."""

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """Note the start of the TLS handshake, then wrap as usual."""
        recorder = _RECORDING.get()
        if recorder is not None:
            recorder.mark("tls_start")
        return super().wrap_bio(*args, **kwargs)


def timed_ssl_context(cafile: str | None = None) -> TimedSSLContext:
    """A verifying client context (the system's CAs, or ``cafile``'s) that times handshakes."""
    context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    return context


def _hook(name: str) -> Any:
    async def note(_session: object, context: SimpleNamespace, _params: object) -> None:
        recorder = context.trace_request_ctx
        if isinstance(recorder, PhaseRecorder):
            recorder.mark(name)

    return note


def trace_config() -> aiohttp.TraceConfig:
    """The hooks that fill the PhaseRecorder passed as ``trace_request_ctx``."""
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_hook("dns_start"))
    config.on_dns_resolvehost_end.append(_hook("dns_end"))
    config.on_connection_create_start.append(_hook("connecting"))
    config.on_connection_create_end.append(_hook("connected"))
    config.on_request_headers_sent.append(_hook("sent"))
    config.on_request_end.append(_hook("first_byte"))
    return config
