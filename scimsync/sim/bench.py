"""``make bench``: what a steady-state cron run costs against the Jira simulator.

A company of N people (default 10,000) already provisioned in a simulated Jira; scimsync
plans against it (the run cron makes every 15 minutes, SPEC §10). Reported: requests per
endpoint, wall time, and peak memory. The simulator shares the process, so wall time is
an upper bound; request counts are exact.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scimsync import api
from scimsync.sim.company import make_people, write_csv
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

CONFIG = """\
version: 1
source: {{type: file, path: company.csv, include_groups: ["atlassian-*"]}}
mapping:
  display_name: "{{{{ user.first_name }}}} {{{{ user.last_name }}}}"
targets:
  jira:
    type: jira
    url: {url}
    token: sim-jira-token
    default_groups: [jira-software-users]
    groups: [{{from: "atlassian-jira-*", to: "{{{{ group.name | replace('atlassian-', '') }}}}"}}]
policy: {{max_deactivations: "5%"}}
http: {{concurrency: {concurrency}}}
audit_log: null
"""


def seed(sim: JiraSim, people: list[dict[str, Any]]) -> None:
    """Provision everyone in scope, as a previous run would have."""
    sim.add_group("scimsync-managed")
    for p in people:
        groups: list[str] = p["groups"]
        if not any(g.startswith("atlassian-") for g in groups):
            continue
        wanted = ["jira-software-users", "scimsync-managed"]
        wanted += [g.replace("atlassian-", "") for g in groups if g.startswith("atlassian-jira-")]
        display = f"{p['first_name']} {p['last_name']}"
        sim.add_user(p["username"], p["email"], display, groups=wanted)


def run(people_count: int, version: str, concurrency: int) -> None:
    """Seed, plan once, print the numbers."""
    people = make_people(people_count)
    sim = JiraSim(version=version)
    seed(sim, people)
    with SimServer(sim.app) as server, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv(people, folder / "company.csv")
        (folder / "scimsync.yaml").write_text(CONFIG.format(url=server.url, concurrency=concurrency))
        config = api.load(folder / "scimsync.yaml")
        sim.log.clear()
        started = time.perf_counter()
        plan = api.make_plan(config)
        elapsed = time.perf_counter() - started
    requests = Counter(e.path for e in sim.log.entries)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Jira {version}, {people_count} people, concurrency {concurrency}:")
    print(
        f"  plan: {elapsed:.2f} s wall, {sum(requests.values())} requests, {len(plan.operations)} operations"
    )
    for path, count in requests.most_common():
        print(f"    {count:6d}  GET {path}")
    print(f"  peak RSS of the process (simulator included): {peak_mb:.0f} MB")


def main() -> None:
    """Parse arguments and run the benchmark for each Jira generation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--version", action="append", help="Jira version(s); default 10.3.1 and 9.12.0")
    args = parser.parse_args()
    for version in args.version or ["10.3.1", "9.12.0"]:
        run(args.people, version, args.concurrency)


if __name__ == "__main__":
    main()
