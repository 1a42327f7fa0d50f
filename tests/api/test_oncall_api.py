"""Who is on call over the API: now and next on a fake clock, a schedule's shifts, and the
overrides someone makes at 3 a.m., which win over the files and say who made them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from responders.oncall.model import Override
from tests.api.oncall_service import (
    PRIMARY,
    SATURDAY_HANDOFF,
    OnCallService,
    serving,
    with_on_call,
)
from tests.conftest import Shop
from tests.fakes import T0

HOUR = timedelta(hours=1)


@pytest.fixture
async def oncall(shop: Shop) -> AsyncIterator[OnCallService]:
    async with serving(shop, with_on_call(shop.services.rules.current)) as service:
        yield service


async def get(service: OnCallService, path: str, status: int = 200) -> Any:
    response = await service.client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def post_override(
    service: OnCallService, body: dict[str, Any], status: int = 201, **headers: str
) -> Any:
    response = await service.client.post(
        "/api/v1/schedules/primary/overrides", json=body, headers=headers
    )
    assert response.status == status, await response.text()
    return await response.json()


def people(shifts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(s["person"]["id"], s["start"], s["end"]) for s in shifts]


def at(moment: datetime) -> str:
    return moment.isoformat()


class TestWhoIsOnCall:
    async def test_now_and_the_next_three_handoffs(self, oncall: OnCallService) -> None:
        answer = await get(oncall, "/api/v1/oncall")

        primary, secondary = answer["schedules"]
        assert answer["at"] == at(T0)
        assert primary["on_call"] == {"id": "bob", "name": "Bob Example"}
        assert primary["until"] == at(SATURDAY_HANDOFF)
        assert people(primary["next"]) == [
            ("carol", at(SATURDAY_HANDOFF), at(SATURDAY_HANDOFF + 24 * HOUR)),
            ("alice", at(SATURDAY_HANDOFF + 24 * HOUR), at(SATURDAY_HANDOFF + 48 * HOUR)),
            ("bob", at(SATURDAY_HANDOFF + 48 * HOUR), at(SATURDAY_HANDOFF + 72 * HOUR)),
        ]
        assert primary["time_zone"] == "Europe/Berlin"
        # secondary covers weekdays 09:00-17:00 in New York: nobody at 04:00 there
        assert (secondary["on_call"], secondary["until"]) == (None, None)
        assert people(secondary["next"])[0] == ("dan", at(T0 + 5 * HOUR), at(T0 + 13 * HOUR))

    async def test_the_clock_moves_the_answer(self, shop: Shop, oncall: OnCallService) -> None:
        shop.clock.advance(SATURDAY_HANDOFF - T0)

        answer = await get(oncall, "/api/v1/oncall?schedule=primary")

        [primary] = answer["schedules"]
        assert primary["on_call"]["id"] == "carol"
        assert primary["until"] == at(SATURDAY_HANDOFF + 24 * HOUR)

    async def test_one_schedule_or_a_404_naming_the_parameter(self, oncall: OnCallService) -> None:
        assert [s["name"] for s in (await get(oncall, "/api/v1/schedules/primary"),)] == ["primary"]
        missing = await get(oncall, "/api/v1/oncall?schedule=nope", 404)
        assert missing == {"error": "no such schedule", "field": "schedule"}
        assert (await get(oncall, "/api/v1/schedules/nope", 404))["field"] == "schedule"

    async def test_signed_feeds_for_every_schedule_and_person(self, oncall: OnCallService) -> None:
        answer = await get(oncall, "/api/v1/oncall")

        base = "https://stormwatch.example/calendar"
        assert answer["schedules"][0]["calendar"].startswith(f"{base}/schedules/primary.ics?sig=")
        assert [(p["id"], p["name"]) for p in answer["people"]][:2] == [
            ("alice", "Alice Example"),
            ("bob", "Bob Example"),
        ]
        assert answer["people"][0]["calendar"].startswith(f"{base}/people/alice.ics?sig=")

    async def test_the_service_answers_without_schedules(self, shop: Shop) -> None:
        response = await shop.client.get("/api/v1/oncall")
        assert response.status == 200
        assert (await response.json())["schedules"] == []


class TestShifts:
    async def test_a_week_from_now_by_default(self, oncall: OnCallService) -> None:
        answer = await get(oncall, "/api/v1/schedules/primary/shifts")

        shifts = people(answer["shifts"])
        assert (answer["from"], answer["to"]) == (at(T0), at(T0 + 7 * 24 * HOUR))
        assert shifts[0] == ("bob", at(T0), at(SATURDAY_HANDOFF))
        assert [who for who, _, _ in shifts] == [
            "bob",
            "carol",
            "alice",
            "bob",
            "carol",
            "alice",
            "bob",
            "carol",
        ]
        assert shifts[-1][2] == at(T0 + 7 * 24 * HOUR)

    async def test_a_time_without_offset_is_the_schedules_local_time(
        self, oncall: OnCallService
    ) -> None:
        answer = await get(
            oncall,
            "/api/v1/schedules/primary/shifts?from=2026-11-23T09:00&to=2026-11-24T09:00%2B01:00",
        )
        assert people(answer["shifts"]) == [
            ("alice", "2026-11-23T08:00:00+00:00", "2026-11-24T08:00:00+00:00")
        ]

    async def test_an_unencoded_plus_still_reads_as_an_offset(self, oncall: OnCallService) -> None:
        answer = await get(
            oncall, "/api/v1/schedules/primary/shifts?from=2026-11-27T10:00:00+01:00"
        )
        assert answer["from"] == at(T0)

    @pytest.mark.parametrize(
        ("query", "field", "reason"),
        [
            ("from=yesterday", "from", "not an ISO 8601 time"),
            ("to=2026-13-01T00:00Z", "to", "not an ISO 8601 time"),
            ("from=2026-11-28T00:00Z&to=2026-11-27T00:00Z", "to", "must be after from"),
            ("from=2026-11-27T00:00Z&to=2027-03-01T00:00Z", "to", "at most 90 days"),
        ],
        ids=["bad-from", "bad-to", "backwards", "over-90-days"],
    )
    async def test_bad_windows_name_the_parameter(
        self, oncall: OnCallService, query: str, field: str, reason: str
    ) -> None:
        answer = await get(oncall, f"/api/v1/schedules/primary/shifts?{query}", 400)
        assert answer["field"] == field
        assert reason in answer["error"]


class TestOverrides:
    async def test_a_stored_override_wins_and_shows_up(self, oncall: OnCallService) -> None:
        made = await post_override(
            oncall, {"person": "alice", "end": at(T0 + 2 * HOUR), "created_by": "maria"}
        )

        assert made == {
            "id": made["id"],
            "schedule": "primary",
            "person": {"id": "alice", "name": "Alice Example"},
            "start": at(T0),
            "end": at(T0 + 2 * HOUR),
            "created_by": "maria",
        }
        [primary] = (await get(oncall, "/api/v1/oncall?schedule=primary"))["schedules"]
        assert (primary["on_call"]["id"], primary["until"]) == ("alice", at(T0 + 2 * HOUR))
        assert people(primary["next"])[0] == ("bob", at(T0 + 2 * HOUR), at(SATURDAY_HANDOFF))
        listed = await get(oncall, "/api/v1/schedules/primary/overrides")
        assert listed["overrides"] == [made]
        shifts = await get(oncall, "/api/v1/schedules/primary/shifts")
        assert people(shifts["shifts"])[:2] == [
            ("alice", at(T0), at(T0 + 2 * HOUR)),
            ("bob", at(T0 + 2 * HOUR), at(SATURDAY_HANDOFF)),
        ]

    async def test_a_stored_override_wins_over_one_in_the_files(self, shop: Shop) -> None:
        in_file = Override("carol", T0 - HOUR, T0 + 3 * HOUR)
        schedule = replace(PRIMARY, overrides=(in_file,))
        async with serving(shop, with_on_call(shop.services.rules.current, schedule)) as oncall:
            [before] = (await get(oncall, "/api/v1/oncall"))["schedules"]
            await post_override(
                oncall, {"person": "dan", "start": at(T0 + HOUR), "end": at(T0 + 2 * HOUR)}
            )
            shifts = await get(oncall, "/api/v1/schedules/primary/shifts")

        assert before["on_call"]["id"] == "carol"
        assert people(shifts["shifts"])[:4] == [
            ("carol", at(T0), at(T0 + HOUR)),
            ("dan", at(T0 + HOUR), at(T0 + 2 * HOUR)),
            ("carol", at(T0 + 2 * HOUR), at(T0 + 3 * HOUR)),
            ("bob", at(T0 + 3 * HOUR), at(SATURDAY_HANDOFF)),
        ]

    @pytest.mark.parametrize(
        ("body", "status", "field"),
        [
            ({"person": "mallory", "end": "2026-11-27T12:00:00Z"}, 400, "person"),
            ({"person": "alice", "end": "2026-11-27T09:00:00Z"}, 400, "end"),
            (
                {"person": "alice", "start": "2026-11-27T12:00Z", "end": "2026-11-27T11:00Z"},
                400,
                "end",
            ),
            (
                {"person": "alice", "start": "2026-11-27T06:00Z", "end": "2026-11-27T08:00Z"},
                400,
                "end",
            ),
            ({"person": "alice"}, 400, "end"),
            ({"person": "alice", "end": "2026-11-27T12:00:00"}, 400, "end"),
            ({"person": "alice", "end": "2026-11-27T12:00Z", "until": "x"}, 400, "until"),
            ({"person": "alice", "end": "2026-11-27T12:00Z", "created_by": ""}, 400, "created_by"),
        ],
        ids=[
            "unknown-person",
            "end-is-now",
            "end-before-start",
            "already-over",
            "no-end",
            "no-offset",
            "unknown-key",
            "empty-author",
        ],
    )
    async def test_validation_names_the_field(
        self, oncall: OnCallService, body: dict[str, Any], status: int, field: str
    ) -> None:
        answer = await post_override(oncall, body, status)
        assert answer["field"] == field
        assert (await get(oncall, "/api/v1/schedules/primary/overrides"))["overrides"] == []

    async def test_an_unknown_schedule_is_a_404(self, oncall: OnCallService) -> None:
        response = await oncall.client.post(
            "/api/v1/schedules/nope/overrides", json={"person": "alice", "end": at(T0 + HOUR)}
        )
        assert response.status == 404
        assert (await response.json())["field"] == "schedule"

    async def test_overlapping_a_stored_override_is_a_conflict(self, oncall: OnCallService) -> None:
        first = await post_override(oncall, {"person": "alice", "end": at(T0 + 2 * HOUR)})

        clash = await post_override(
            oncall, {"person": "carol", "start": at(T0 + HOUR), "end": at(T0 + 3 * HOUR)}, 409
        )
        after = await post_override(
            oncall, {"person": "carol", "start": at(T0 + 2 * HOUR), "end": at(T0 + 3 * HOUR)}
        )

        assert clash["conflicts"] == [first]
        assert after["start"] == at(T0 + 2 * HOUR)

    async def test_two_people_taking_the_same_night_at_once(self, oncall: OnCallService) -> None:
        bodies = [{"person": who, "end": at(T0 + 8 * HOUR)} for who in ("alice", "carol")]
        responses = await asyncio.gather(
            *(
                oncall.client.post("/api/v1/schedules/primary/overrides", json=body)
                for body in bodies
            )
        )

        assert sorted(r.status for r in responses) == [201, 409]
        listed = await get(oncall, "/api/v1/schedules/primary/overrides")
        assert len(listed["overrides"]) == 1

    async def test_delete_and_who_did_it(self, oncall: OnCallService) -> None:
        made = await post_override(oncall, {"person": "alice", "end": at(T0 + 2 * HOUR)})
        path = f"/api/v1/schedules/primary/overrides/{made['id']}"

        deleted = await oncall.client.delete(path, headers={"X-Stormwatch-Actor": "maria"})
        again = await oncall.client.delete(path)

        assert deleted.status == 200
        assert await deleted.json() == {
            "id": made["id"],
            "schedule": "primary",
            "deleted_by": "maria",
        }
        assert again.status == 404
        assert (await again.json())["field"] == "id"
        assert (await get(oncall, "/api/v1/schedules/primary/overrides"))["overrides"] == []
        [primary] = (await get(oncall, "/api/v1/oncall?schedule=primary"))["schedules"]
        assert primary["on_call"]["id"] == "bob"
        async with oncall.services.pool.acquire() as connection:
            kept = await connection.fetchval(
                "SELECT deleted_by FROM oncall_overrides WHERE id = $1", made["id"]
            )
        assert kept == "maria"

    @pytest.mark.parametrize(
        ("body", "headers", "made_by"),
        [
            ({"created_by": "maria"}, {"X-Stormwatch-Actor": "chatops"}, "maria"),
            ({}, {"X-Stormwatch-Actor": "chatops"}, "chatops"),
            ({}, {}, "api"),
        ],
        ids=["body-wins", "header", "neither"],
    )
    async def test_who_made_it(
        self,
        oncall: OnCallService,
        body: dict[str, Any],
        headers: dict[str, str],
        made_by: str,
    ) -> None:
        made = await post_override(
            oncall, {"person": "alice", "end": at(T0 + HOUR), **body}, **headers
        )
        assert made["created_by"] == made_by
