"""``stormwatch demo-shop``: run the shop, or switch a fault in a running one."""

from __future__ import annotations

import argparse
import os
from typing import Any

from aiohttp import web

from detector.api_client import ApiClient
from detector.demo_shop.faults import Fault
from detector.demo_shop.shop import Shop, ShopConfig
from detector.demo_shop.storefront import create_storefront
from detector.demo_shop.traffic import traffic_context

DEFAULT_PORT = 8081
DEFAULT_TRAFFIC = 2.0


def add_to(commands: Any) -> None:
    """Add ``demo-shop`` and its ``fault`` action to the command line."""
    shop = commands.add_parser(
        "demo-shop",
        help="run a small shop to break: storefront, exporter-shaped metrics, fault switches",
    )
    shop.add_argument("--host", default="127.0.0.1", help="address to listen on")
    shop.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    shop.add_argument(
        "--traffic",
        type=float,
        nargs="?",
        const=DEFAULT_TRAFFIC,
        metavar="PER_SECOND",
        help=f"send background shoppers (default {DEFAULT_TRAFFIC:g} per second when given)",
    )
    defaults = ShopConfig()
    shop.add_argument("--pool-size", type=int, default=defaults.pool_size)
    shop.add_argument(
        "--pool-timeout",
        type=float,
        default=defaults.pool_timeout,
        help="seconds a request queues for a database connection before it fails",
    )
    actions = shop.add_subparsers(dest="shop_command", metavar="ACTION")
    fault = actions.add_parser("fault", help="turn a fault on in a running shop (--clear: off)")
    fault.add_argument("name", choices=[fault.value for fault in Fault])
    fault.add_argument("--clear", action="store_true", help="turn the fault off")
    fault.add_argument("--seconds", type=float, help="added latency, for the latency fault")
    fault.add_argument(
        "--url",
        default=os.environ.get("STORMWATCH_DEMO_SHOP_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
        help="the shop's URL (STORMWATCH_DEMO_SHOP_URL)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the shop until interrupted, or switch one fault and print what is on."""
    if args.shop_command == "fault":
        return _switch(args)
    shop = Shop(ShopConfig(pool_size=args.pool_size, pool_timeout=args.pool_timeout))
    app = create_storefront(shop)
    base_url = f"http://{args.host}:{args.port}"
    if args.traffic:
        app.cleanup_ctx.append(traffic_context(base_url, args.traffic))
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda _: print(f"demo shop on {base_url} (faults: POST {base_url}/faults)"),
    )
    return 0


def _switch(args: argparse.Namespace) -> int:
    client = ApiClient(args.url, None)
    if args.clear:
        answer = client.delete(f"/faults/{args.name}")
    else:
        body: dict[str, Any] = {"name": args.name}
        if args.seconds is not None:
            body["seconds"] = args.seconds
        answer = client.post("/faults", body)
    if args.clear and not answer.get("cleared"):
        print(f"{args.name} was not on")
    active = [fault["name"] for fault in answer["faults"]]
    print(f"faults on: {', '.join(active) or 'none'}")
    return 0
