"""Secrets at rest (issue 11, item 6): where a credential may be written down, and where never.

A config file that holds a literal secret and that other accounts may read gets a warning
naming the key; plan files and the state file are written 0600 whatever was there before.
And the end-to-end scan: every source type and every target type runs against its
simulator (a real slapd for LDAP) with a credential planted for it alone, through check,
plan, apply and failing runs (wrong credentials: 401s, a refused bind, a refused key); no
planted credential, nor its Basic-auth or URL-encoded form, may appear in stdout, stderr
(text and JSON logs, -vv tracebacks included), the plan file, the audit log, the state
file, any other file the runs leave, or the message and traceback of an exception.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from click.testing import CliRunner, Result

from scimsync import api
from scimsync.cli import cli
from scimsync.config import Config, load_config
from scimsync.config.loader import secret_keys
from scimsync.engine.plan import Plan, TargetPlan
from scimsync.errors import ScimsyncError
from scimsync.sim import slapd
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.company import make_people, write_csv
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.demo_sources import BASE_DN, SERVICE_DN, ScimIdp, company_ldif
from scimsync.sim.demo_targets import JIRA_VERSION, WIKI_VERSION, seed_cloud, seed_jira, seed_wiki
from scimsync.sim.entra import CLIENT_ID as ENTRA_CLIENT
from scimsync.sim.entra import TENANT_ID as ENTRA_TENANT
from scimsync.sim.entra import EntraSim
from scimsync.sim.google import TOKEN_PATH as GOOGLE_TOKEN_PATH
from scimsync.sim.google import GoogleSim
from scimsync.sim.jira import JiraSim
from scimsync.sim.keycloak import KeycloakSim
from scimsync.sim.okta import OktaSim
from scimsync.sim.onelogin import OneLoginSim
from scimsync.sim.server import SimServer
from scimsync.sources import implemented_source_types
from scimsync.state import State, TargetState, save_state
from scimsync.targets import implemented_target_types

# --- the warning about literal secrets in a config others may read ------------------------

SECRET_KEYS = ("token", "password", "client_secret")  # every key the config models hold a Secret in
TARGET = {"type": "jira", "url": "https://jira.acme.test", "token": "${JIRA_TOKEN}"}
# Each source type with its secret keys written out: (source block, the key paths holding one).
LITERAL_SOURCES = [
    ({"type": "okta", "url": "https://acme.okta.test", "token": "00okta-literal"}, ["source.token"]),
    (
        {"type": "entra", "tenant_id": "t", "client_id": "c", "client_secret": "entra-literal"},
        ["source.client_secret"],
    ),
    (
        {
            "type": "onelogin",
            "url": "https://acme.onelogin.test",
            "client_id": "c",
            "client_secret": "ol-lit",
        },
        ["source.client_secret"],
    ),
    (
        {
            "type": "keycloak",
            "url": "https://sso.acme.test",
            "realm": "acme",
            "client_id": "c",
            "client_secret": "kc-literal",
        },
        ["source.client_secret"],
    ),
    ({"type": "scim", "url": "https://idp.acme.test/scim/v2", "token": "scim-literal"}, ["source.token"]),
    (
        {"type": "scim", "url": "https://idp.acme.test/scim/v2", "username": "u", "password": "pw-literal"},
        ["source.password"],
    ),
    (
        {
            "type": "ldap",
            "url": "ldaps://ldap.acme.test",
            "bind_dn": "cn=scimsync",
            "password": "ldap-literal",
            "base_dn": "dc=acme",
        },
        ["source.password"],
    ),
    ({"type": "file", "path": "people.csv"}, []),
]


def _write_config(folder: Path, source: dict[str, Any], targets: dict[str, Any], mode: int) -> Path:
    path = folder / "scimsync.yaml"
    text = yaml.safe_dump({"version": 1, "source": source, "targets": targets}, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("source", "paths"),
    LITERAL_SOURCES,
    ids=["okta", "entra", "onelogin", "keycloak", "scim-token", "scim-basic", "ldap", "file"],
)
def test_a_literal_secret_in_a_config_others_can_read_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: dict[str, Any], paths: list[str]
) -> None:
    monkeypatch.setenv("JIRA_TOKEN", "jira-from-env")
    targets = {
        "jira": TARGET,
        "wiki": {
            "type": "confluence",
            "url": "https://wiki.acme.test",
            "username": "a",
            "password": "wiki-lit",
        },
        "cloud": {"type": "atlassian-cloud", "url": "https://api.atlassian.test/scim", "token": "cloud-lit"},
    }
    expected = [*paths, "targets.wiki.password", "targets.cloud.token"]

    config = load_config(_write_config(tmp_path, source, targets, 0o644))

    found = [w for w in config.warnings if "holds a literal secret" in w]
    assert [w.split(" ", 1)[0] for w in found] == expected
    assert all("readable by its group and others (mode 0644)" in w for w in found)
    assert all("use ${ENV} or chmod 600" in w for w in found)
    secrets = [v for block in (source, *targets.values()) for k, v in block.items() if k in SECRET_KEYS]
    assert not [s for s in secrets if any(s in w for w in config.warnings)]


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        (0o600, None),
        (0o400, None),
        (0o640, "readable by its group (mode 0640)"),
        (0o604, "readable by others (mode 0604)"),
        (0o620, "writable by its group (mode 0620)"),
        (0o666, "readable by its group and others (mode 0666)"),
    ],
)
def test_only_group_and_other_bits_make_the_warning(tmp_path: Path, mode: int, said: str | None) -> None:
    path = _write_config(
        tmp_path, {"type": "file", "path": "p.csv"}, {"jira": {**TARGET, "token": "lit"}}, mode
    )

    warnings = [w for w in load_config(path).warnings if "literal secret" in w]

    assert warnings == (
        []
        if said is None
        else [f"targets.jira.token holds a literal secret and the file is {said}: use ${{ENV}} or chmod 600"]
    )


@pytest.mark.parametrize(
    ("written", "literal"),
    [
        ("${JIRA_TOKEN}", False),
        ("  ${JIRA_TOKEN}  ", False),
        ("${JIRA_TOKEN:-}", False),
        ("${JIRA_TOKEN:-fallback-token}", True),  # the default is written in the file
        ("Bearer-${JIRA_TOKEN}", True),
        ("$${NOT_A_REFERENCE}", True),  # `$${` is a literal `${`
        (123456, True),
        ("$JIRA_TOKEN", False),  # a reference written the shell way: warned about as that instead
    ],
)
def test_only_what_is_written_out_counts_as_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: Any, literal: bool
) -> None:
    monkeypatch.setenv("JIRA_TOKEN", "jira-from-env")
    path = _write_config(
        tmp_path, {"type": "file", "path": "p.csv"}, {"jira": {**TARGET, "token": written}}, 0o644
    )

    warned = [w for w in load_config(path).warnings if w.startswith("targets.jira.token holds a literal")]

    assert bool(warned) is literal


def test_the_cli_prints_the_warning_and_not_the_secret(tmp_path: Path) -> None:
    path = _write_config(
        tmp_path, {"type": "file", "path": "p.csv"}, {"jira": {**TARGET, "token": "tok-9Zq"}}, 0o644
    )

    result = CliRunner().invoke(cli, ["-c", str(path), "validate"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert (
        f"warning: {path}: targets.jira.token holds a literal secret and the file is readable by its group "
        "and others (mode 0644): use ${ENV} or chmod 600"
    ) in result.stderr.splitlines()
    assert "tok-9Zq" not in result.stdout + result.stderr


def test_a_google_key_file_others_can_read_is_named(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text("{}", encoding="utf-8")
    source = {"type": "google", "credentials_file": "sa.json", "subject": "admin@acme.test"}
    path = _write_config(tmp_path, source, {"jira": {**TARGET, "token": "${JIRA_TOKEN:-}"}}, 0o600)

    key.chmod(0o644)
    open_key = load_config(path, env={"JIRA_TOKEN": "t0k3n"}).warnings
    key.chmod(0o600)
    closed_key = load_config(path, env={"JIRA_TOKEN": "t0k3n"}).warnings

    assert open_key == (
        f"source.credentials_file: the service-account key {key} is readable by its group and others "
        "(mode 0644): chmod 600",
    )
    assert closed_key == ()


# --- files written 0600 --------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Let files be created as open as their writer asks (umask 0), as on a careless host."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("existed", [False, True])
def test_a_plan_file_is_written_0600(tmp_path: Path, existed: bool) -> None:
    path = tmp_path / "plan.json"
    if existed:
        path.write_text("old", encoding="utf-8")
        path.chmod(0o666)

    api.save_plan(Plan(targets=(TargetPlan("jira", "jira"),), config_digest="d"), path)

    assert _mode(path) == 0o600
    assert api.read_plan(path).config_digest == "d"


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("existed", [False, True])
def test_the_state_file_is_written_0600(tmp_path: Path, existed: bool) -> None:
    path = tmp_path / "state" / "scimsync-state.json"
    if existed:
        path.parent.mkdir()
        path.write_text("{}", encoding="utf-8")
        path.chmod(0o666)

    save_state(path, State({"jira": TargetState({"00u1": "JIRAUSER1"}, url="https://jira.acme.test")}))

    assert _mode(path) == 0o600
    assert json.loads(path.read_text(encoding="utf-8"))["targets"]["jira"]["links"] == {"00u1": "JIRAUSER1"}


# --- the end-to-end scan ------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """A credential planted for one system: the value, and the user it is paired with in Basic auth."""

    system: str
    value: str
    user: str | None = None

    def forms(self) -> list[str]:
        """Return the spellings a leak may take: as is, escaped, URL-encoded, base64, Basic auth."""
        forms = {self.value, json.dumps(self.value)[1:-1], quote(self.value, safe=""), _b64(self.value)}
        if self.user is not None:
            forms.add(_b64(f"{self.user}:{self.value}"))
        return sorted(forms)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# One of a kind per system and per run (the right one and a wrong one), with characters
# that change under URL encoding, so that every form of each is told apart.
RIGHT = {
    "okta": "00Okta+Right/tok3n-a1",
    "entra": "Entra~Right.s3cret_b2",
    "onelogin": "OneLogin+Right/s3cret-c3",
    "keycloak": "Keycloak+Right/s3cret-d4",
    "scim": "ScimIdp+Right/t0ken-e5",
    "ldap": "Ldap+Right/p4ss-f6",
    "jira": "Jira+Right/p4t-g7",
    "confluence": "Wiki+Right/p4ss-h8",
    "atlassian-cloud": "Cloud+Right/k3y-i9",
    "scim-target": "ScimTarget+Right/t0ken-j0",
}
WRONG = {name: value.replace("Right", "Wrong") for name, value in RIGHT.items()}
USERS = {
    "onelogin": "sim-onelogin-client",
    "keycloak": "scimsync",
    "entra": ENTRA_CLIENT,
    "confluence": "admin",
}
PEOPLE = make_people(16)
SOURCE_TYPES = ["file", "ldap", "scim", "okta", "entra", "google", "onelogin", "keycloak"]
MAPPING = {
    "username": "{{ user.email | localpart | lower }}",
    "email": "{{ user.email | lower }}",
    "display_name": "{{ user.first_name }} {{ user.last_name }}",
}


@dataclass
class RunningSource:
    """A seeded IdP: its ``source:`` block, the block with a wrong credential, what it must keep secret."""

    block: dict[str, Any]
    wrong: dict[str, Any]
    secrets: list[str] = field(default_factory=list)


def _planted(name: str) -> list[str]:
    user = USERS.get(name)
    return [*Credential(name, RIGHT[name], user).forms(), *Credential(name, WRONG[name], user).forms()]


@contextmanager
def _served(sim: Any) -> Iterator[str]:
    with SimServer(sim.app) as server:
        yield server.url


@contextmanager
def running_source(
    kind: str, people: list[dict[str, Any]], folder: Path, spare: Path
) -> Iterator[RunningSource]:
    """Start the IdP of type ``kind`` holding ``people``, with the planted credential."""
    secret, wrong = RIGHT.get(kind, ""), WRONG.get(kind, "")
    if kind == "file":
        write_csv(people, folder / "company.csv")
        yield RunningSource({"type": "file", "path": "company.csv"}, {"type": "file", "path": "gone.csv"})
    elif kind == "ldap":
        problem = slapd.missing()
        if problem is not None:
            if os.environ.get("SCIMSYNC_REQUIRE_SLAPD") == "1":
                pytest.fail(f"{problem}, and SCIMSYNC_REQUIRE_SLAPD=1 requires the slapd tests")
            pytest.skip(problem)
        database = slapd.Database(BASE_DN, "admin-" + secret, seed=(company_ldif(people, secret),))
        with slapd.running([database], parent=spare) as server:
            block = {
                "type": "ldap",
                "url": server.url,
                "start_tls": False,
                "bind_dn": SERVICE_DN,
                "password": secret,
                "base_dn": BASE_DN,
                "flavor": "openldap",
                "disabled_filter": "(employeeType=disabled)",
            }
            yield RunningSource(block, {**block, "password": wrong}, _planted(kind))
    elif kind == "scim":
        idp = ScimIdp()
        idp.token = secret
        idp.sim = AtlassianCloudSim(directory_id=idp.directory_id, token=secret)
        idp.seed_company(people)
        with _served(idp) as url:
            block = {"type": "scim", "url": url + idp.base_path, "token": secret}
            yield RunningSource(block, {**block, "token": wrong}, _planted(kind))
    elif kind == "google":
        yield from _google(people, folder)
    else:
        sim, block = _cloud_idp(kind, secret)
        sim.seed_company(people)
        with _served(sim) as url:
            block = {k: url if v == "URL" else v for k, v in block.items()}
            yield RunningSource(
                block, {**block, ("token" if kind == "okta" else "client_secret"): wrong}, _planted(kind)
            )


def _cloud_idp(kind: str, secret: str) -> tuple[Any, dict[str, Any]]:
    if kind == "okta":
        return OktaSim(token=secret), {"type": "okta", "url": "URL", "token": secret}
    if kind == "entra":
        block = {
            "type": "entra",
            "tenant_id": ENTRA_TENANT,
            "client_id": ENTRA_CLIENT,
            "client_secret": secret,
            "login_url": "URL",
            "graph_url": "URL",
        }
        return EntraSim(client_secret=secret), block
    if kind == "onelogin":
        block = {"type": "onelogin", "url": "URL", "client_id": USERS["onelogin"], "client_secret": secret}
        return OneLoginSim(client_secret=secret), block
    assert kind == "keycloak"
    block = {
        "type": "keycloak",
        "url": "URL",
        "realm": "acme",
        "client_id": "scimsync",
        "client_secret": secret,
    }
    return KeycloakSim(client_secret=secret), block


def _google(people: list[dict[str, Any]], folder: Path) -> Iterator[RunningSource]:
    sim = GoogleSim()
    subject = sim.seed_company(people)
    with _served(sim) as url:
        token_url = url + GOOGLE_TOKEN_PATH
        key = sim.write_credentials_file(folder / "google-sa.json", token_url)
        # A key of another project: the simulator refuses its signature.
        other = GoogleSim().write_credentials_file(folder / "google-other.json", token_url)
        block = {
            "type": "google",
            "credentials_file": key.name,
            "subject": subject,
            "url": url,
            "token_url": token_url,
        }
        secrets = [s for path in (key, other) for s in _key_material(path)]
        yield RunningSource(block, {**block, "credentials_file": other.name}, secrets)


def _key_material(path: Path) -> list[str]:
    """Return what of a service-account key must never show: its id and each line of the private key."""
    info = json.loads(path.read_text(encoding="utf-8"))
    lines = [line for line in info["private_key"].splitlines() if line and not line.startswith("-----")]
    assert len(lines) > 10  # a real PEM body, not an empty field
    return [info["private_key_id"], *lines]


@dataclass
class RunningTargets:
    """The four target types, seeded, served: their config entries, right and wrong."""

    right: dict[str, dict[str, Any]]
    wrong: dict[str, dict[str, Any]]
    secrets: list[str]


@contextmanager
def running_targets(people: list[dict[str, Any]]) -> Iterator[RunningTargets]:
    """Start Jira (token), Confluence (Basic auth), Atlassian Cloud and a SCIM service (tokens)."""
    jira = JiraSim(version=JIRA_VERSION, token=RIGHT["jira"])
    seed_jira(jira, people)
    wiki = ConfluenceSim(WIKI_VERSION, password=RIGHT["confluence"])
    seed_wiki(wiki, people)
    cloud = AtlassianCloudSim(directory_id="acme-cloud", token=RIGHT["atlassian-cloud"])
    seed_cloud(cloud, people)
    scim = AtlassianCloudSim(directory_id="acme-scim", token=RIGHT["scim-target"])
    rules = [{"from": "atlassian-*", "to": "{{ group.name | replace('atlassian-', '') }}"}]
    with ExitStack() as stack:
        jira_url = stack.enter_context(_served(jira))
        wiki_url = stack.enter_context(SimServer(wiki.app, prefix="/confluence")).url
        cloud_url = stack.enter_context(_served(cloud)) + cloud.base_path
        scim_url = stack.enter_context(_served(scim)) + scim.base_path
        right: dict[str, dict[str, Any]] = {
            "jira": {
                "type": "jira",
                "url": jira_url,
                "token": RIGHT["jira"],
                "default_groups": ["jira-software-users"],
            },
            "wiki": {
                "type": "confluence",
                "url": wiki_url,
                "username": "admin",
                "password": RIGHT["confluence"],
            },
            "cloud": {
                "type": "atlassian-cloud",
                "url": cloud_url,
                "token": RIGHT["atlassian-cloud"],
                "groups": rules,
            },
            "scim": {"type": "scim", "url": scim_url, "token": RIGHT["scim-target"]},
        }
        wrong = {
            "jira": {**right["jira"], "token": WRONG["jira"]},
            "wiki": {**right["wiki"], "password": WRONG["confluence"]},
            "cloud": {**right["cloud"], "token": WRONG["atlassian-cloud"]},
            "scim": {**right["scim"], "token": WRONG["scim-target"]},
        }
        secrets = [
            s for name in ("jira", "confluence", "atlassian-cloud", "scim-target") for s in _planted(name)
        ]
        yield RunningTargets(right, wrong, secrets)


class Scene:
    """One source type and every target type, with configs of right and wrong credentials."""

    def __init__(self, folder: Path, source: RunningSource, targets: RunningTargets) -> None:
        self.folder = folder
        self.secrets = source.secrets + targets.secrets
        self.seen: list[tuple[str, str]] = []  # (where, text) of everything the runs showed
        self.configs = {
            "right": self._config("right", source.block, targets.right),
            "wrong-targets": self._config("wrong-targets", source.block, targets.wrong),
            "wrong-source": self._config("wrong-source", source.wrong, targets.right),
            "all-wrong": self._config("all-wrong", source.wrong, targets.wrong),
        }

    def _config(self, name: str, source: dict[str, Any], targets: dict[str, dict[str, Any]]) -> Path:
        # Every config sits in the scene's folder, so they share the audit log, state and plans.
        data = {
            "version": 1,
            "source": {**source, "include_groups": ["atlassian-*"]},
            "mapping": MAPPING,
            "targets": targets,
            "policy": {"protected_users": ["admin", "site-admin"], "max_deactivations": 5},
            "http": {"retries": 1, "timeout": 10},
            "audit_log": "audit.jsonl",
            "lock_file": ".scimsync.lock",
            "state_file": "scimsync-state.json",
        }
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        path.chmod(0o644)  # literal secrets others may read: warned about, never shown
        return path

    def run(self, config: str, *args: str) -> Result:
        """Run the CLI with one of the configs; keep what it printed."""
        result = CliRunner().invoke(cli, ["-c", str(self.configs[config]), *args], catch_exceptions=False)
        where = f"{config}: scimsync {' '.join(args)}"
        self.seen += [(f"{where} (stdout)", result.stdout), (f"{where} (stderr)", result.stderr)]
        return result

    def call(self, config: str) -> None:
        """Plan through the library; keep the message and traceback of what it raised, if anything."""
        try:
            plan = api.make_plan(load_config(self.configs[config]))
        except ScimsyncError as exc:
            shown = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
            self.seen.append((f"{config}: api.make_plan raised", shown))
            return
        self.seen.append((f"{config}: api.make_plan", repr(plan)))

    def files(self) -> list[tuple[str, str]]:
        """Return every file the runs left, except the configs and key files that hold secrets by design."""
        kept = {*self.configs.values(), self.folder / "google-sa.json", self.folder / "google-other.json"}
        return [
            (str(p.relative_to(self.folder)), p.read_text(encoding="utf-8", errors="replace"))
            for p in sorted(self.folder.rglob("*"))
            if p.is_file() and p not in kept
        ]

    def leaks(self) -> list[str]:
        """Return where each planted secret showed, in any of its forms."""
        return [
            f"{where}: {secret!r}"
            for where, text in [*self.seen, *self.files()]
            for secret in self.secrets
            if secret in text
        ]


def test_the_scan_covers_every_system_type_and_secret_key() -> None:
    # A new source or target type, or a new secret field, joins the scan before it ships.
    assert implemented_source_types() == set(SOURCE_TYPES)
    assert implemented_target_types() == {"jira", "confluence", "atlassian-cloud", "scim"}
    assert secret_keys(Config) == set(SECRET_KEYS)


@pytest.mark.parametrize("kind", SOURCE_TYPES)
def test_no_planted_secret_shows_anywhere(
    kind: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    spare = tmp_path_factory.mktemp("servers")
    with running_source(kind, PEOPLE, folder, spare) as source, running_targets(PEOPLE) as targets:
        scene = Scene(folder, source, targets)

        checked = scene.run("right", "check")
        plan, again_plan = str(folder / "plan.json"), str(folder / "again.json")
        planned = scene.run("right", "-v", "plan", "--out", plan)
        refused = scene.run("wrong-targets", "-vv", "--log-format", "json", "apply", plan, "-y")
        applied = scene.run("right", "-v", "apply", plan, "-y")
        again = scene.run("right", "-vv", "plan", "--format", "json", "--out", again_plan)
        bad_source = scene.run("wrong-source", "-vv", "plan")
        bad_all = scene.run("all-wrong", "-v", "--log-format", "json", "check")
        for config in ("wrong-targets", "wrong-source", "right"):
            scene.call(config)

    # The runs went where the scan needs them: writes, failures, every file written.
    assert checked.exit_code == 0, checked.output
    assert planned.exit_code == 0, planned.stderr
    assert refused.exit_code == 1, refused.stderr
    assert applied.exit_code == 0, applied.stderr
    assert again.exit_code == 0, again.stderr
    assert bad_source.exit_code != 0
    assert bad_all.exit_code != 0
    assert "401" in refused.stderr
    assert "DEBUG scimsync.http: " in again.stderr  # every request logged, as text
    assert '"logger": "scimsync.http"' in refused.stderr  # and as JSON
    assert [line for line in bad_source.stderr.splitlines() if line.startswith("error: source: ")]
    audit = [json.loads(line) for line in (folder / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {e["target"] for e in audit if e["result"] == "done"} >= {"jira", "cloud", "scim"}
    assert (folder / "scimsync-state.json").stat().st_size > 0
    assert _mode(folder / "plan.json") == _mode(folder / "scimsync-state.json") == 0o600
    if kind != "google":  # a key file is not a config: its warning is tested above
        assert "holds a literal secret" in planned.stderr
    assert not scene.leaks()
