"""Run one journey once: its steps in order over one client session and cookie jar, each request
timed by phase, every failure given one reason, the steps after a failure skipped and the
cleanup steps run regardless. Pure checks live in ``evaluation``; this module does the I/O."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from detector.probes.evaluation import evaluate
from detector.probes.journey import (
    IDEMPOTENCY_HEADER,
    SYNTHETIC_HEADER,
    JourneySpec,
    ProbeStepSpec,
)
from detector.probes.outcome import FailureReason, Response, RunResult, StepResult, StepStatus
from detector.probes.redaction import is_secret_name, redact_body
from detector.probes.templating import render, render_value
from detector.probes.timings import PhaseRecorder, TimedSSLContext, trace_config

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Of a larger answer only this much is read and checked: a probe must not hold a download."""


@dataclass(slots=True)
class _Run:
    """What one run carries from step to step."""

    journey: JourneySpec
    session: aiohttp.ClientSession
    context: dict[str, Any]
    deadline: float
    failed: bool = False

    @property
    def secrets(self) -> list[str]:
        """Values extracted under secret-looking names, redacted wherever they show up."""
        return [
            str(value)
            for values in self.context["steps"].values()
            for name, value in values.items()
            if is_secret_name(name)
        ]


class JourneyRunner:
    """Runs journeys from one location, with one verifying SSL context shared by all runs."""

    def __init__(self, location: str, ssl_context: TimedSSLContext) -> None:
        self._location = location
        self._ssl = ssl_context
        self._trace = trace_config()

    async def run(self, journey: JourneySpec, run_id: str, started_at: datetime) -> RunResult:
        """One run; never raises for what the shop does (that is a failed step)."""
        began = time.perf_counter()
        context: dict[str, Any] = {
            "steps": {},
            "vars": dict(journey.vars),
            "run": {"id": run_id, "location": self._location, "journey": journey.name},
        }
        connector = aiohttp.TCPConnector(ssl=self._ssl, use_dns_cache=False)
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # shops under test often run on an IP
            trace_configs=[self._trace],
        ) as session:
            deadline = asyncio.get_running_loop().time() + journey.timeout.total_seconds()
            state = _Run(journey, session, context, deadline)
            steps = [await self._step(state, step) for step in journey.steps]
        return RunResult(
            journey=journey.name,
            location=self._location,
            run_id=run_id,
            started_at=started_at,
            duration_s=time.perf_counter() - began,
            steps=tuple(steps),
        )

    async def _step(self, state: _Run, step: ProbeStepSpec) -> StepResult:
        if state.failed and not step.always_run:
            return StepResult(step.name, StepStatus.SKIPPED, detail="an earlier step failed")
        retries = state.journey.retries_of(step)
        delay = state.journey.retry_delay.total_seconds()
        attempts = 0
        while True:
            attempts += 1
            result, values = await self._attempt(state, step)
            left = state.deadline - asyncio.get_running_loop().time()
            if result.status is not StepStatus.FAILED or not result.retryable:
                break
            if attempts > retries or (left <= delay and not step.always_run):
                break
            await asyncio.sleep(delay)
        if result.status is StepStatus.FAILED:
            state.failed = True
        state.context["steps"][step.name] = values
        return _with_attempts(result, attempts)

    async def _attempt(
        self, state: _Run, step: ProbeStepSpec
    ) -> tuple[StepResult, Mapping[str, Any]]:
        try:
            request = _request(state, step)
        except ValueError as err:
            if state.failed:
                return StepResult(step.name, StepStatus.SKIPPED, detail=f"needs {err}"), {}
            return StepResult(step.name, StepStatus.FAILED, FailureReason.EXTRACTION, str(err)), {}
        timeout = state.journey.step_timeout_of(step).total_seconds()
        if not step.always_run:
            timeout = min(timeout, state.deadline - asyncio.get_running_loop().time())
        recorder = PhaseRecorder()
        began = time.perf_counter()
        try:
            with recorder:
                async with asyncio.timeout(max(timeout, 0.0)):
                    response = await self._send(state.session, request, recorder)
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as err:
            reason, detail = classify(err, timeout)
            elapsed = time.perf_counter() - began
            return StepResult(
                step.name,
                StepStatus.FAILED,
                reason,
                detail,
                latency_s=elapsed,
                phases=recorder.phases(),
            ), {}
        verdict = evaluate(step, response)
        failed = verdict.reason is not None
        return StepResult(
            step.name,
            StepStatus.FAILED if failed else StepStatus.PASSED,
            verdict.reason,
            verdict.detail,
            http_status=response.status,
            latency_s=response.latency_s,
            phases=recorder.phases(),
            body=redact_body(response.body, state.secrets) if failed else "",
        ), verdict.values

    async def _send(
        self, session: aiohttp.ClientSession, request: dict[str, Any], recorder: PhaseRecorder
    ) -> Response:
        began = time.perf_counter()
        async with session.request(**request, trace_request_ctx=recorder) as answer:
            body = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) >= MAX_BODY_BYTES:  # enough to check; the rest is not read
                    break
            recorder.mark("end")
            return Response(
                status=answer.status,
                headers=CIMultiDict(answer.headers),
                body=bytes(body),
                cookies={cookie.key: cookie.value for cookie in session.cookie_jar},
                latency_s=time.perf_counter() - began,
            )


def _request(state: _Run, step: ProbeStepSpec) -> dict[str, Any]:
    """The request of a step, its templates filled (ValueError when a value is missing)."""
    context = state.context
    headers = {name: render(value, context) for name, value in step.headers.items()}
    headers[SYNTHETIC_HEADER] = "1"
    headers[IDEMPOTENCY_HEADER] = f"{context['run']['id']}:{step.name}"
    request: dict[str, Any] = {
        "method": str(step.method),
        "url": render(step.url, context),
        "headers": headers,
    }
    if step.body is not None:
        request["data"] = render(step.body, context).encode()
    elif step.json_body is not None:
        request["data"] = json.dumps(render_value(step.json_body, context)).encode()
        headers.setdefault("Content-Type", "application/json")
    return request


def classify(err: BaseException, timeout: float) -> tuple[FailureReason, str]:
    """The one reason a request that got no answer failed, and a line saying what happened."""
    if isinstance(err, TimeoutError):
        return FailureReason.TIMEOUT, f"no complete answer within {timeout:.3g}s"
    if isinstance(err, (aiohttp.ClientSSLError, ssl.SSLError)):
        return FailureReason.TLS, _text(err)
    if isinstance(err, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(err, "os_error", None), socket.gaierror
    ):
        return FailureReason.DNS, _text(err)
    return FailureReason.CONNECT, _text(err)


def _text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def _with_attempts(result: StepResult, attempts: int) -> StepResult:
    return result if result.status is StepStatus.SKIPPED else replace(result, attempts=attempts)
