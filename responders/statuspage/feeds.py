"""The incident history as Atom and RSS feeds (feedgen), newest first, each entry holding the
incident's updates in order, so a feed reader shows the whole story."""

from __future__ import annotations

from html import escape

from feedgen.feed import FeedGenerator

from responders.statuspage.documents import RECENT_INCIDENTS, shortlink
from responders.statuspage.model import PageState, PublicIncident


def atom(state: PageState) -> bytes:
    """``/history.atom``."""
    data: bytes = _feed(state).atom_str(pretty=True)
    return data


def rss(state: PageState) -> bytes:
    """``/history.rss``."""
    data: bytes = _feed(state).rss_str(pretty=True)
    return data


def _feed(state: PageState) -> FeedGenerator:
    page_url = state.page.url.rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{page_url}/history")
    feed.title(f"{state.page.name} status - incident history")
    feed.description(f"Incidents and their updates on the {state.page.name} status page")
    feed.link(href=f"{page_url}/status", rel="alternate")
    feed.link(href=f"{page_url}/history.atom", rel="self")
    feed.language("en")
    feed.updated(state.updated_at)
    feed.lastBuildDate(state.updated_at)
    for incident in reversed(state.incidents[:RECENT_INCIDENTS]):  # feedgen prepends
        entry = feed.add_entry()
        link = shortlink(state, incident.public_id)
        entry.id(link)
        entry.guid(link, permalink=True)
        entry.title(incident.name)
        entry.link(href=link)
        entry.published(incident.created_at)
        entry.updated(incident.updated_at)
        entry.content(_story(incident), type="html")
        entry.description(_story(incident))
    return feed


def _story(incident: PublicIncident) -> str:
    """The updates, oldest first, as escaped HTML paragraphs."""
    paragraphs = [
        f"<p><strong>{escape(u.status.value.capitalize())}</strong> "
        f"({escape(u.display_at.isoformat(timespec='minutes'))}): {escape(u.body)}</p>"
        for u in reversed(incident.updates)
    ]
    if incident.postmortem_body:
        paragraphs.append(f"<p><strong>Postmortem</strong>: {escape(incident.postmortem_body)}</p>")
    return "".join(paragraphs)
