"""The report written out: Markdown for a post-mortem document, HTML (with the chart inline)
for a browser. Sandboxed Jinja2 templates; HTML escapes everything but the chart it drew."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from detector.report.facts import Report, span

TEMPLATES = Path(__file__).parent / "templates"


class ReportFormat(StrEnum):
    """How the report is written."""

    MARKDOWN = "markdown"
    HTML = "html"

    @property
    def content_type(self) -> str:
        """Its HTTP content type."""
        return "text/html" if self is ReportFormat.HTML else "text/markdown"


_ENVIRONMENTS = {
    form: SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=form is ReportFormat.HTML,
        keep_trailing_newline=True,
    )
    for form in ReportFormat
}
_FILES = {ReportFormat.MARKDOWN: "report.md.j2", ReportFormat.HTML: "report.html.j2"}


def render(report: Report, form: ReportFormat) -> str:
    """The report as text in ``form``."""
    template = _ENVIRONMENTS[form].get_template(_FILES[form])
    return template.render(
        r=report,
        i=report.incident,
        d=report.durations,
        span=span,
        at=_at,
        compact=_compact,
    )


def _at(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _compact(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, ensure_ascii=False) if detail else ""
