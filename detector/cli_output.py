"""How every ``stormwatch`` command that reads the API prints: JSON with ``--json``, else text."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def show(args: argparse.Namespace, data: Any, render: Callable[[Any], str]) -> int:
    """Print ``data`` as JSON when asked, else as ``render`` writes it; exit status 0."""
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0
