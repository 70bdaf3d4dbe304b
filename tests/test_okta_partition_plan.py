"""How the okta source plans a ranged read of the user list (scimsync.sources.okta_partition).

The ranges are checked with the Okta simulator's own filter parser (strict to idp-apis §1.4),
not with the code that wrote them: every timestamp must fall in exactly one range.
"""

from __future__ import annotations

import random

import pytest

from scimsync.sim.okta_query import USER_FILTER, compile_expression
from scimsync.sources.okta_partition import (
    MARGIN_MS,
    boundaries,
    follows_ids,
    okta_time,
    part_count,
    ranges,
    read_start,
    since,
    to_ms,
)

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00.000Z in epoch ms


def test_okta_timestamps_read_and_written_to_the_millisecond() -> None:
    assert okta_time(T0 + 7) == "2027-01-15T08:00:00.007Z"
    assert to_ms("2027-01-15T08:00:00.007Z") == T0 + 7
    assert to_ms(okta_time(T0 + 123_456_789)) == T0 + 123_456_789
    for bad in (None, 17, "", "yesterday", "2027-01-15T08:00:00.000"):  # no zone: not Okta's
        assert to_ms(bad) is None


@pytest.mark.parametrize("count", [1, 2, 7])
def test_the_ranges_meet_with_open_ends_so_every_time_is_in_exactly_one(count: int) -> None:
    points = sorted(random.Random(count).sample(range(T0, T0 + 10_000), count))
    filters = [compile_expression(f, USER_FILTER) for f in ranges(points)]
    assert len(filters) == count + 1
    probes = [T0 - 10**9, T0 + 20_000, *points, *(p - 1 for p in points), *(p + 1 for p in points)]
    for ms in probes:
        user = {"lastUpdated": okta_time(ms)}
        assert sum(1 for keep in filters if keep(user)) == 1, okta_time(ms)
    assert compile_expression(since(T0), USER_FILTER)({"lastUpdated": okta_time(T0)})
    assert ranges([]) == []


def test_a_sample_unrelated_to_the_ids_is_split_at_its_quantiles() -> None:
    # Most users changed recently: the quantiles follow them; an even split in time would not.
    values = [T0 + i for i in range(100)] + [T0 + 1_000_000 + i for i in range(300)]
    sample = random.Random(1).sample(values, len(values))
    assert not follows_ids(sample)
    points = boundaries(sample, [], 4, T0 + 2_000_000)
    assert points == [T0 + 1_000_000, T0 + 1_000_100, T0 + 1_000_200]


def test_a_sample_in_id_order_is_only_the_oldest_so_the_time_up_to_the_newest_is_split_evenly() -> None:
    sample = [T0 + 10 * i for i in range(200)]  # created in id order, never changed since
    newest = [T0 + 100_000 - i for i in range(200)]
    assert follows_ids(sample)
    assert boundaries(sample, newest, 4, T0 + 900_000) == [T0 + 24_950, T0 + 49_900, T0 + 74_850]
    # Without the newest users (a search refused), up to the start of the read.
    assert boundaries(sample, [], 2, T0 + 900_000) == [T0 + 450_000]


def test_no_split_when_there_is_nothing_to_split() -> None:
    assert boundaries([T0] * 50, [T0], 8, T0) == []  # everyone changed in the same millisecond
    assert boundaries([T0, T0 + 5], [], 1, T0 + 9) == []
    assert boundaries([T0], [], 8, T0 + 9) == []


def test_the_read_starts_at_the_server_date_less_the_margin_else_at_the_newest_value_seen() -> None:
    date = {"Date": "Fri, 15 Jan 2027 08:00:10 GMT"}
    assert read_start(date, [T0]) == T0 + 10_000 - MARGIN_MS
    assert read_start({}, [T0, T0 + 9, T0 + 3]) == T0 + 9
    assert read_start({"Date": "not a date"}, [T0 + 1]) == T0 + 1
    assert read_start({}, []) is None


@pytest.mark.parametrize(
    ("users", "page", "concurrency", "parts"),
    [
        (None, 200, 8, 1),  # Everyone not visible: the size is unknown
        (700, 200, 8, 1),  # four pages: not worth splitting
        (2_000, 200, 8, 2),
        (10_000, 200, 8, 8),  # http.concurrency bounds it
        (100_000, 200, 4, 4),
        (400, 20, 8, 5),  # an org with a smaller page cap
    ],
)
def test_the_number_of_ranges(users: int | None, page: int, concurrency: int, parts: int) -> None:
    assert part_count(users, page, concurrency) == parts
