"""The Okta user list split into ``lastUpdated`` ranges that are read in parallel (idp-apis §1.3, §1.4).

``/api/v1/users`` pages by one opaque cursor, 200 users a page (§1.3, §1.4): 100,000 people
are a chain of 500 requests. ``filter`` takes ``lastUpdated`` with ``lt`` and ``ge`` (§1.4),
so the list splits into ranges, each its own cursor, walked at the same time::

    lastUpdated lt "B1" | lastUpdated ge "B1" and lastUpdated lt "B2" | ... | lastUpdated ge "Bk"

Why nobody is missed (a missed user would look like a leaver and be deactivated):

* The ranges have open ends and meet, so every timestamp falls in exactly one of them.
* ``filter`` reads the store, not the lagging search index, and lists every status,
  DEPROVISIONED included (§1.4): one set of ranges holds both lists of the single walk.
* Okta sets ``lastUpdated`` to the time of each change, so it only grows. A user changed
  during the read can leave its range before that range's cursor reaches it and enter one
  whose cursor is already past it. Such a user changed after the read began (``START``, on
  the server's clock), so the catch-up ``lastUpdated ge START``, read after every range has
  finished, lists it. A user not changed since START kept one value below START through
  the whole read, so the one range holding that value listed it.
* START is the ``Date`` of the first answer (the server's clock) less ``MARGIN_MS``, for
  servers whose clocks differ slightly; without a ``Date``, the newest ``lastUpdated`` in that
  answer (no later than the server's clock then).
* The reader keeps each user once, at its newest ``lastUpdated``, and goes back to the single
  walk when the server refuses the filter (400).

Where the boundaries go: the first page of the plain list is a sample. When its values do not
follow its id order, they stand for the whole list, and the boundaries are its quantiles.
When they do (people created in id order and seldom changed since, as in a seeded org), that
page holds only the oldest users, so the boundaries divide the time between it and the oldest
of the 200 newest users (a ``search`` sorted by ``lastUpdated``, §1.4) evenly. A poor guess costs
time, never completeness.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scimsync.http.ratelimit import http_date

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
ALL_TIME = '"1970-01-01T00:00:00.000Z"'  # before any user (for the newest-users search)
# [U] Not in the reference: Okta's servers keep NTP time (milliseconds apart) and a user's
# change is visible once its request returns. 2 s covers both many times over; it costs
# re-reading the users changed in the 2 s before the read (``Date`` itself is rounded down).
MARGIN_MS = 2_000
# A range walk costs half a page more than its share on average, and planning costs three
# requests (Everyone's count, the newest users, the catch-up): below 4 pages a range, the
# shorter chain is not worth them.
MIN_PAGES = 4
# The sample "follows its id order" when this share of neighbours (by id) is in time order;
# values with no relation to the ids give about half.
IN_ORDER = 0.9


def to_ms(value: Any) -> int | None:
    """Return an Okta timestamp (``YYYY-MM-DDTHH:mm:ss.SSSZ``, §1.2) as epoch milliseconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - EPOCH) // datetime.timedelta(milliseconds=1)


def okta_time(ms: int) -> str:
    """Format epoch milliseconds as Okta writes its timestamps (§1.2)."""
    moment = EPOCH + datetime.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def read_start(headers: Mapping[str, str], sample: Iterable[int]) -> int | None:
    """Return START (epoch ms): the answer's ``Date`` less the margin, else the newest value seen."""
    seconds = http_date(headers.get("Date"))  # garbage (a proxy's, a year 99999) is no date
    if seconds is not None:
        return int(seconds * 1000) - MARGIN_MS
    return max(sample, default=None)


def part_count(users: int | None, page: int, concurrency: int) -> int:
    """Return how many ranges to read ``users`` in, ``page`` a page (1: the single walk)."""
    if not users or page < 1:
        return 1
    pages = -(-users // page)
    return max(1, min(concurrency, pages // MIN_PAGES))


def follows_ids(values: Sequence[int]) -> bool:
    """Tell whether values listed in id order are (almost) in time order too."""
    pairs = len(values) - 1
    if pairs < 1:
        return False
    ordered = sum(1 for a, b in itertools.pairwise(values) if a <= b)
    return ordered >= IN_ORDER * pairs


def boundaries(sample: Sequence[int], newest: Sequence[int], parts: int, start: int) -> list[int]:
    """Return at most ``parts - 1`` increasing split points (epoch ms) for the ranges.

    ``sample`` is the first page of the plain list in its (id) order; ``newest`` the newest
    users' values (empty when unknown); ``start`` is START.
    """
    if parts < 2 or len(sample) < 2:
        return []
    ordered = sorted(sample)
    if not follows_ids(sample):
        points = [ordered[len(ordered) * i // parts] for i in range(1, parts)]
    else:
        low = ordered[0]
        high = min(newest) if newest else start
        if high <= low:
            return []
        points = [low + (high - low) * i // parts for i in range(1, parts)]
    return sorted({p for p in points if p > ordered[0]})


def ranges(points: Sequence[int]) -> list[str]:
    """Return the ``filter`` of each range: open at both ends, each meeting the next (§1.4)."""
    if not points:
        return []
    text = [f'"{okta_time(p)}"' for p in points]
    inner = [f"lastUpdated ge {a} and lastUpdated lt {b}" for a, b in itertools.pairwise(text)]
    return [f"lastUpdated lt {text[0]}", *inner, f"lastUpdated ge {text[-1]}"]


def since(start: int) -> str:
    """Return the catch-up ``filter``: everyone changed since START."""
    return f'lastUpdated ge "{okta_time(start)}"'
