"""The Okta simulator's lastUpdated filters, strict to idp-apis §1.4, and its request hook.

The okta source splits the user list into ``lastUpdated`` ranges (scimsync.sources.okta_partition);
these tests pin what the simulator answers them, with plain requests. Expected sets are
computed from the seeded times, by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from scimsync.sim.okta import OktaSim
from scimsync.sim.okta_common import INVALID_SEARCH, OktaError
from scimsync.sim.server import SimServer

TOKEN = "sim-okta-token"
START = 1_800_000_000.0  # 2027-01-15T08:00:00.000Z
STATUSES = ("ACTIVE", "DEPROVISIONED", "SUSPENDED", "STAGED")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def stamp(second: int) -> str:
    return f"2027-01-15T08:00:{second:02d}.000Z"


CLOCK = Clock()


@pytest.fixture
def org() -> Iterator[tuple[OktaSim, str]]:
    """Twenty users, user n changed last at second n, of every status in turn; pages of 3."""
    clock = CLOCK
    sim = OktaSim(max_page=3, clock=clock)
    for n in range(20):
        clock.now = START + n
        sim.add_user(f"u{n:02d}@acme.test", status=STATUSES[n % 4])
    with SimServer(sim.app) as server:
        yield sim, server.url


def walk(url: str, **params: Any) -> list[dict[str, Any]]:
    """Follow the next links; return every user listed."""
    session = requests.Session()
    session.headers["Authorization"] = f"SSWS {TOKEN}"
    answer = session.get(f"{url}/api/v1/users", params=params, timeout=10)
    users: list[dict[str, Any]] = []
    while True:
        assert answer.status_code == 200, answer.text
        users += answer.json()
        if "next" not in answer.links:
            return users
        answer = session.get(answer.links["next"]["url"], timeout=10)


def logins(users: list[dict[str, Any]]) -> list[str]:
    return [u["profile"]["login"] for u in users]


def test_last_updated_ranges_list_every_status_and_meet_without_overlap(org: tuple[OktaSim, str]) -> None:
    _, url = org
    ranges = [
        f'lastUpdated lt "{stamp(5)}"',
        f'lastUpdated ge "{stamp(5)}" and lastUpdated lt "{stamp(12)}"',
        f'lastUpdated GE "{stamp(12)}" AND lastUpdated Lt "{stamp(13)}"',  # operators ignore case
        f'lastUpdated ge "{stamp(13)}"',
    ]
    found = [logins(walk(url, filter=r, limit=3)) for r in ranges]
    names = [f"u{n:02d}@acme.test" for n in range(20)]
    assert found == [names[:5], names[5:12], names[12:13], names[13:]]  # DEPROVISIONED included
    assert logins(walk(url, filter=f'lastUpdated gt "{stamp(18)}" or lastUpdated le "{stamp(0)}"')) == [
        names[0],
        names[19],
    ]


@pytest.mark.parametrize(
    ("expression", "cause"),
    [
        (f'created gt "{stamp(3)}"', "filter: 'created' cannot be filtered on"),
        (f'lastUpdated sw "{stamp(3)}"', "filter: 'sw' is not supported on 'lastUpdated'"),
        ('id gt "00u"', "filter: 'gt' is not supported on 'id'"),
        (f'lastUpdated ne "{stamp(3)}"', "filter: unsupported operator 'ne'"),
        (f'not lastUpdated lt "{stamp(3)}"', "filter: a property expected, not 'not'"),
    ],
)
def test_a_filter_outside_the_reference_is_400_e0000031(
    org: tuple[OktaSim, str], expression: str, cause: str
) -> None:
    _, url = org
    answer = requests.get(
        f"{url}/api/v1/users",
        params={"filter": expression},
        headers={"Authorization": f"SSWS {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["errorCode"] == "E0000031" and body["errorCauses"] == [{"errorSummary": cause}]


def test_search_sorted_by_last_updated_descending_gives_the_newest_first(org: tuple[OktaSim, str]) -> None:
    _, url = org
    params = {"search": 'lastUpdated gt "1970-01-01T00:00:00.000Z"', "sortBy": "lastUpdated"}
    newest = walk(url, **params, sortOrder="desc", limit=3)
    assert logins(newest) == [f"u{n:02d}@acme.test" for n in reversed(range(20))]


def test_a_user_changed_between_two_pages_moves_out_of_its_range(org: tuple[OktaSim, str]) -> None:
    # What the source's catch-up read is for: a cursor on a range does not see a user that
    # left the range before the cursor reached it, nor one that entered it behind the cursor.
    sim, url = org
    seen: list[Mapping[str, Any]] = []

    def change_u10_once(path: str, query: Mapping[str, Any]) -> None:
        if "after" in query and not seen:
            seen.append(dict(query))
            CLOCK.now = START + 60
            sim.update_profile("u10@acme.test", department="moved")

    sim.on_request(change_u10_once)
    lower = logins(walk(url, filter=f'lastUpdated lt "{stamp(30)}"', limit=3))
    assert "u10@acme.test" not in lower and len(lower) == 19
    assert logins(walk(url, filter=f'lastUpdated ge "{stamp(30)}"')) == ["u10@acme.test"]


def test_a_hook_may_refuse_a_request_with_an_okta_error(org: tuple[OktaSim, str]) -> None:
    sim, url = org

    def refuse(path: str, query: Mapping[str, Any]) -> None:
        if "filter" in query:
            raise OktaError(400, INVALID_SEARCH, causes=["filter: refused by the test"])

    sim.on_request(refuse)
    headers = {"Authorization": f"SSWS {TOKEN}"}
    refused = requests.get(
        f"{url}/api/v1/users", params={"filter": 'status eq "ACTIVE"'}, headers=headers, timeout=10
    )
    assert refused.status_code == 400 and refused.json()["errorCode"] == "E0000031"
    assert requests.get(f"{url}/api/v1/users", headers=headers, timeout=10).status_code == 200
    assert [e.status for e in sim.log.entries] == [400, 200]
