"""A small synchronous client for the service's HTTP API, used by the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """The API answered with an error, or could not be reached."""


class ApiClient:
    """Talks to ``base_url`` with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document; ``query`` values are encoded, so any text is safe in them."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return self._call("GET", path, None)

    def text(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """GET a text document (Markdown, HTML) as it is."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        body: str = self._call("GET", path, None, parse=False)
        return body

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body and return the JSON answer."""
        return self._call("POST", path, body or {})

    def put(self, path: str, body: dict[str, Any]) -> Any:
        """PUT a JSON body and return the JSON answer."""
        return self._call("PUT", path, body)

    def delete(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        """DELETE a resource and return the JSON answer; ``headers`` are sent as well (say,
        ``X-Stormwatch-Actor``)."""
        return self._call("DELETE", path, None, headers=headers)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        parse: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        if not self._base.startswith(("http://", "https://")):
            raise ApiError(f"service URL must start with http:// or https:// (got {self._base!r})")
        sent = {**(headers or {}), "Accept": "application/json"}
        if self._token:
            sent["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            self._base + path, data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                content_type = response.headers.get("Content-Type", "no content type")
                if not parse:
                    return response.read().decode("utf-8", errors="replace")
                return _parsed(response.status, content_type, response.read())
        except urllib.error.HTTPError as err:
            raise ApiError(_describe(err)) from None
        except (urllib.error.URLError, OSError) as err:
            raise ApiError(f"cannot reach {self._base}: {getattr(err, 'reason', err)}") from None


def _parsed(status: int, content_type: str, body: bytes) -> Any:
    """The JSON answer. Anything else (a sign-in proxy's login page, say) is named by status and
    type only: its body is no use on a terminal and may echo the request."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise ApiError(f"HTTP {status}: expected JSON, got {content_type}") from None


def _describe(err: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(err.read())
    except (ValueError, OSError):
        return f"HTTP {err.code}"
    message = f"HTTP {err.code}: {body.get('error', '')}"
    if body.get("field"):
        message += f" ({body['field']})"
    return message
