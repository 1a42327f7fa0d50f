"""Slack's incoming webhook on 127.0.0.1, checking every payload against the documented shape
(the subset of Block Kit a page uses) and answering like Slack does."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "xoxwh3bS3cr3tPathP4rt"
KNOWN_BLOCKS = {"header", "section", "actions", "context", "divider", "image"}


def text_problems(where: str, text: Any, limit: int, kinds: set[str]) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in kinds:
        return [f"{where}: a text object of type {sorted(kinds)}"]
    value = text.get("text")
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        return [f"{where}: text of 1 to {limit} characters"]
    return []


def button_problems(where: str, button: Any) -> list[str]:
    if not isinstance(button, dict) or button.get("type") != "button":
        return [f"{where}: a button"]
    found = text_problems(f"{where}.text", button.get("text"), 75, {"plain_text"})
    url = button.get("url")
    if not isinstance(url, str) or not url.startswith("http") or len(url) > 3000:
        found.append(f"{where}.url: an http(s) URL of at most 3000 characters")
    if len(str(button.get("action_id", ""))) > 255:
        found.append(f"{where}.action_id: at most 255 characters")
    return found


def block_problems(where: str, block: Any) -> list[str]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in KNOWN_BLOCKS:
        return [f"{where}: unknown block type {kind!r}"]
    if kind == "header":
        return text_problems(f"{where}.text", block.get("text"), 150, {"plain_text"})
    if kind == "section":
        found = []
        if "text" in block or "fields" not in block:
            found += text_problems(
                f"{where}.text", block.get("text"), 3000, {"mrkdwn", "plain_text"}
            )
        fields = block.get("fields", [])
        if len(fields) > 10:
            found.append(f"{where}.fields: at most 10")
        for i, field in enumerate(fields):
            found += text_problems(f"{where}.fields[{i}]", field, 2000, {"mrkdwn", "plain_text"})
        if "accessory" in block:
            found += button_problems(f"{where}.accessory", block["accessory"])
        return found
    if kind == "actions":
        elements = block.get("elements", [])
        found = [] if 1 <= len(elements) <= 25 else [f"{where}.elements: 1 to 25"]
        for i, button in enumerate(elements):
            found += button_problems(f"{where}.elements[{i}]", button)
        return found
    if kind == "context":
        elements = block.get("elements", [])
        found = [] if 1 <= len(elements) <= 10 else [f"{where}.elements: 1 to 10"]
        for i, element in enumerate(elements):
            found += text_problems(
                f"{where}.elements[{i}]", element, 3000, {"mrkdwn", "plain_text"}
            )
        return found
    return []


def payload_problems(payload: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook payload (the subset a page can use)."""
    if not isinstance(payload, dict):
        return ["payload: an object"]
    found = [] if isinstance(payload.get("text"), str) and payload["text"] else ["text: a string"]
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*found, "blocks: a list of at most 50"]
    for i, block in enumerate(blocks):
        found += block_problems(f"blocks[{i}]", block)
    return found


class IncomingWebhook:
    """Slack's incoming webhook on 127.0.0.1: ``/services/T0/B0/<token>`` takes JSON and
    answers 200 ``ok``; a wrong token is ``404 no_service``, a payload Slack would refuse is
    ``400 invalid_blocks``, and ``answers`` queues other (status, word) replies."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.answers: list[tuple[int, str]] = []
        self.url = ""
        self._server: TestServer | None = None

    async def start(self) -> IncomingWebhook:
        app = web.Application()
        app.router.add_post("/services/T0/B0/{token}", self._receive)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url(f"/services/T0/B0/{TOKEN}"))
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _receive(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.Response(status=404, text="no_service")
        if request.content_type != "application/json":
            return web.Response(status=400, text="invalid_payload")
        payload = json.loads(await request.read())
        self.payloads.append(payload)
        if self.answers:
            status, word = self.answers.pop(0)
            return web.Response(status=status, text=word)
        problems = payload_problems(payload)
        self.problems += problems
        return web.Response(
            status=400 if problems else 200, text="invalid_blocks" if problems else "ok"
        )
