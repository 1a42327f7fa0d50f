"""A bare aiohttp server answering fixed bytes: the ceiling the status page is measured against.

It serves the very bytes the service sent for each document (with the same content type) and
nothing else, so ``service / bare`` shows what the snapshot lookup, the ETag check and the
service's middleware cost on top of plain aiohttp. Run as
``python benchmarks/bare_documents.py PORT PATH=FILE=CONTENT-TYPE ...``; it serves until SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from detector.service.serve import event_loop


def document(body: bytes, content_type: str) -> web.Handler:
    """A handler answering ``body``."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return answer


async def ready(_request: web.Request) -> web.Response:
    """Same readiness path as the service, so one wait loop serves both."""
    return web.json_response({"status": "ready"})


def main() -> None:
    """Serve on 127.0.0.1:PORT on the service's event loop (uvloop) with access logging off, as
    ``stormwatch serve`` does."""
    app = web.Application()
    app.router.add_get("/readyz", ready)
    for spec in sys.argv[2:]:
        path, file, content_type = spec.split("=", 2)
        app.router.add_get(path, document(Path(file).read_bytes(), content_type))
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=event_loop()
    )


if __name__ == "__main__":
    main()
