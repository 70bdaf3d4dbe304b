"""``scimsync demo``: simulated Jira and Confluence Data Center, a made-up company, plan -> apply -> plan."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from scimsync import api
from scimsync.render import Consoles, progress, render_apply, render_plan
from scimsync.sim.company import make_people, write_csv
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

CONFIG = """\
# Written by `scimsync demo`. Every key is documented in config.example.yaml.
version: 1
source:
  type: file
  path: company.csv
  include_groups: ["atlassian-*"]      # only people in an atlassian-* group get accounts
mapping:
  username: "{{{{ user.email | localpart | lower }}}}"
  email: "{{{{ user.email | lower }}}}"
  display_name: "{{{{ user.first_name }}}} {{{{ user.last_name }}}}"
targets:
  jira:
    type: jira
    url: {url}
    token: ${{SCIMSYNC_DEMO_TOKEN:-sim-jira-token}}
    default_groups: [jira-software-users]
    groups:
      - from: "atlassian-jira-*"
        to: "{{{{ group.name | replace('atlassian-', '') }}}}"
  confluence:
    type: confluence
    url: {wiki_url}
    username: admin
    password: ${{SCIMSYNC_DEMO_WIKI_PASSWORD:-sim-wiki-password}}
    default_groups: [confluence-users]
    groups:
      - from: "atlassian-confluence-users"
        to: [confluence-editors]
policy:
  protected_users: [admin]
  max_deactivations: 5
audit_log: audit.jsonl
lock_file: .scimsync.lock
"""


WIKI_VERSION = "9.4.0"  # cannot change names or emails over REST before 10.0: the plan says so


def seed(sim: JiraSim, people: list[dict[str, Any]]) -> None:
    """Give the simulated Jira the history of a company that synced before."""
    sim.add_group("scimsync-managed")
    jira_people = [p for p in people if "atlassian-jira-users" in p["groups"]]
    for i, person in enumerate(jira_people[:8]):
        name = person["username"]
        display = f"{person['first_name']} {person['last_name']}"
        email = person["email"]
        if i == 1:
            display = f"{person['first_name']} Oldname"  # a name change in the IdP
        if i == 2:
            email = f"{name}@old-acme.example"  # an email change
        sim.add_user(name, email, display, active=i != 3, groups=("jira-software-users", "scimsync-managed"))
    sim.add_user(
        "olga.former",
        "olga.former@acme.example",
        "Olga Former",
        groups=("jira-software-users", "scimsync-managed"),
    )
    sim.add_user("build-bot", "build-bot@acme.example", "Build Bot", groups=("jira-software-users",))
    jira_people[4]["active"] = False  # left the company yesterday; still active in Jira


def seed_wiki(wiki: ConfluenceSim, people: list[dict[str, Any]]) -> None:
    """Give the simulated Confluence a few accounts of its own: some synced before, some not."""
    wiki.add_group("scimsync-managed")
    for person in [p for p in people if "atlassian-confluence-users" in p["groups"]][:4]:
        display = f"{person['first_name']} {person['last_name']}"
        wiki.add_user(
            person["username"], person["email"], display, groups=("confluence-users", "scimsync-managed")
        )
    wiki.add_user(
        "olga.former",
        "olga.former@acme.example",
        "Olga Former",
        groups=("confluence-users", "scimsync-managed"),
    )
    wiki.add_user("wiki-bot", "wiki-bot@acme.example", "Wiki Bot", groups=("confluence-users",))


def run_demo(consoles: Consoles, *, keep: bool = False) -> None:
    """Start the simulator, write a config, and run plan, apply, plan."""
    out = consoles.out
    people = make_people(40)
    sim = JiraSim(version="10.3.1")
    wiki = ConfluenceSim(WIKI_VERSION, password="sim-wiki-password")
    seed(sim, people)
    seed_wiki(wiki, people)
    with (
        SimServer(sim.app) as server,
        SimServer(wiki.app, prefix="/confluence") as wiki_server,
        tempfile.TemporaryDirectory(prefix="scimsync-demo-") as tmp,
    ):
        folder = Path(tmp)
        write_csv(people, folder / "company.csv")
        text = CONFIG.format(url=server.url, wiki_url=wiki_server.url)
        (folder / "scimsync.yaml").write_text(text, encoding="utf-8")
        config = api.load(folder / "scimsync.yaml")
        out.print(f"[bold]scimsync demo[/]: a simulated Jira Data Center 10.3 at {server.url}")
        out.print(
            f"               and a simulated Confluence Data Center {WIKI_VERSION} at {wiki_server.url}"
        )
        out.print(
            f"source: {folder / 'company.csv'} ({len(people)} people); config: {folder / 'scimsync.yaml'}\n"
        )

        out.print("[bold]1. scimsync plan[/]  (reads only)")
        with progress(consoles) as report:
            plan = api.make_plan(config, progress=report)
        render_plan(plan, consoles)

        out.print("\n[bold]2. scimsync apply -y[/]")
        sim.log.clear()
        wiki.log.clear()
        with progress(consoles) as report:
            result = api.apply(config, plan, recheck=False, progress=report, stop=threading.Event())
        render_apply(result, consoles)
        out.print(
            f"{len(sim.log.writes())} write requests sent to Jira, {len(wiki.log.writes())} to Confluence."
        )

        out.print("\n[bold]3. scimsync plan[/]  (again: nothing left to do)")
        sim.log.clear()
        wiki.log.clear()
        again = api.make_plan(config)
        render_plan(again, consoles)
        writes = len(sim.log.writes()) + len(wiki.log.writes())
        out.print(f"{writes} write requests sent by the second plan.\n")
        _next_steps(consoles, folder, keep=keep)
        if keep:
            threading.Event().wait()


def _next_steps(consoles: Consoles, folder: Path, *, keep: bool) -> None:
    out = consoles.out
    out.print("[bold]What to try next[/]")
    if not keep:
        out.print("  scimsync demo --keep     keep the simulator running, then in another shell:")
    out.print(f"  edit {folder / 'company.csv'} (set a person's active to false, rename someone)")
    out.print(f"  scimsync -c {folder / 'scimsync.yaml'} plan")
    out.print(f"  scimsync -c {folder / 'scimsync.yaml'} plan --format markdown --out plan.json")
    out.print("  cp config.example.yaml scimsync.yaml   then point it at your own IdP and Jira")
