"""Templates, filters, group rules, per-target overrides and scoping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.filters import do_lower

from scimsync.config import Config, parse_config
from scimsync.errors import ConfigError
from scimsync.mapping import MappingError, TargetMapper, _Rule, in_scope
from scimsync.models import Group, GroupGrant, SourceDirectory, User, glob_match, key
from scimsync.sources.file_formats import Record
from scimsync.templates import (
    PLAIN_FILTERS,
    Lookup,
    Renderer,
    compile_template,
    compile_with_glob,
    make_environment,
    slug,
    template_problem,
)

AMARA = User(
    id="u123",
    username="amara.k",
    email="Amara.Kone@Acme.com",
    first_name="Amara",
    last_name="Koné",
    display_name="Amara Koné",
    groups=("atlassian-jira-users", "Engineering", "everyone"),
    attributes={"department": "R&D", "cost_center": 42},
)


def config(target: dict[str, Any] | None = None, **top: Any) -> Config:
    """Return a config with one target ``jira`` made of ``target`` keys."""
    data = {
        "version": 1,
        "source": {"type": "file", "path": "users.csv"},
        "targets": {"jira": {"type": "jira", "url": "https://j", "token": "t", **(target or {})}},
        **top,
    }
    return parse_config(data, base_dir=Path("/srv"), env={})


def render(source: str, **context: Any) -> str:
    return make_environment().from_string(source).render(context)


def by_name(*groups: Group) -> dict[str, Group]:
    return {key(g.name): g for g in groups}


# --- environment and filters ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'a.b@x.com' | localpart }}", "a.b"),
        ("{{ 'a.b@x.com' | domain }}", "x.com"),
        ("{{ 'weird@name@x.com' | localpart }}", "weird@name"),
        ("{{ 'no-at-sign' | localpart }}", "no-at-sign"),
        ("{{ 'no-at-sign' | domain }}", ""),
        ("{{ 'Amélie Ångström' | slug }}", "amelie-angstrom"),
        ("{{ '  R&D / Paris  ' | slug }}", "r-d-paris"),
        ("{{ '--Já__Nö--' | slug }}", "ja-no"),
        ("{{ 'Ωμέγα' | slug }}", ""),
        ("{{ 'A.B@X.COM' | localpart | lower }}", "a.b"),
        ("{{ x }}", "<b>"),  # autoescape off: names go to APIs, not HTML
        ("[{{ none }}]", "[]"),  # a null profile field renders empty, not "None"
    ],
)
def test_filters(source: str, expected: str) -> None:
    assert render(source, x="<b>", none=None) == expected


def test_undefined_names_are_errors() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("{{ missing }}")
    with pytest.raises(jinja2.UndefinedError):
        render("{{ user.nope }}", user={})


def test_the_sandbox_blocks_internals() -> None:
    with pytest.raises(jinja2.exceptions.SecurityError):
        render("{{ user.__class__.__mro__ }}", user={})


def test_compile_template_names_where() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_template("{{ x }", where="mapping.username")
    assert caught.value.problems == ["mapping.username: template error: unexpected '}' (line 1)"]
    assert compile_template("{{ x }}", where="w").render(x=1) == "1"


@pytest.mark.parametrize(
    ("source", "names", "problem"),
    [
        ("{{ user.email }}", frozenset({"user"}), None),
        ("{{ group.name }}-{{ user.id }}", frozenset({"user", "group"}), None),
        ("{{ group.name }}", frozenset({"user"}), "template error: unknown name 'group' (available: user)"),
        (
            "line1\n{{ x | nofilter }}",
            frozenset({"x"}),
            "template error: no filter named 'nofilter' (line 2)",
        ),
        (
            "{% for %}",
            frozenset({"user"}),
            "template error: expected an expression, got 'end of statement block' (line 1)",
        ),
    ],
)
def test_template_problem(source: str, names: frozenset[str], problem: str | None) -> None:
    assert template_problem(source, names=names) == problem


# --- desired accounts -------------------------------------------------------------


def test_default_mapping_copies_the_source_user() -> None:
    account = TargetMapper("jira", config()).desired(AMARA, {})
    assert (account.source_id, account.source_username) == ("u123", "amara.k")
    assert (account.username, account.email, account.display_name) == (
        "amara.k",
        "Amara.Kone@Acme.com",
        "Amara Koné",
    )
    assert account.active is True
    assert account.grants == ()


def test_spec_mapping_and_stripping() -> None:
    mapping = {
        "username": "  {{ user.email | localpart | lower }}\n",
        "email": "{{ user.email | lower }}",
        "display_name": "{{ user.first_name }} {{ user.last_name }} ({{ user.attributes.department }})",
    }
    account = TargetMapper("jira", config(mapping=mapping)).desired(AMARA, {})
    assert (account.username, account.email) == ("amara.kone", "amara.kone@acme.com")
    assert account.display_name == "Amara Koné (R&D)"


def test_every_context_field_is_available() -> None:
    template = (
        "{{ user.id }}|{{ user.username }}|{{ user.email }}|{{ user.first_name }}|"
        "{{ user.last_name }}|{{ user.display_name }}|{{ user.active }}|{{ user.groups | join(',') }}|"
        "{{ user.attributes.cost_center }}"
    )
    account = TargetMapper("jira", config(mapping={"display_name": template})).desired(AMARA, {})
    assert account.display_name == (
        "u123|amara.k|Amara.Kone@Acme.com|Amara|Koné|Amara Koné|True|"
        "atlassian-jira-users,Engineering,everyone|42"
    )


def test_inactive_users_map_as_inactive() -> None:
    gone = User(id="u9", username="gone", email="gone@acme.com", active=False)
    assert TargetMapper("jira", config()).desired(gone, {}).active is False


def test_undefined_attribute_is_a_mapping_error() -> None:
    mapper = TargetMapper("jira", config(mapping={"email": "{{ user.attributes.departmnt }}@acme.com"}))
    with pytest.raises(MappingError) as caught:
        mapper.desired(AMARA, {})
    assert str(caught.value) == (
        "target jira: mapping.email for source user 'u123' (amara.k): "
        "'dict object' has no attribute 'departmnt'"
    )
    assert caught.value.target == "jira" and caught.value.user == AMARA


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"username": "{{ user.attributes.blank }}"},
            "mapping.username for source user 'u1' (x): rendered an empty username",
        ),
        (
            {"display_name": "{{ 1 // 0 }}"},
            "mapping.display_name for source user 'u1' (x): integer division or modulo by zero",
        ),
    ],
)
def test_bad_renders_are_mapping_errors(mapping: dict[str, str], message: str) -> None:
    user = User(id="u1", username="x", email="x@acme.com", attributes={"blank": ""})
    with pytest.raises(MappingError) as caught:
        TargetMapper("jira", config(mapping=mapping)).desired(user, {})
    assert str(caught.value) == f"target jira: {message}"


def test_an_empty_email_is_rendered_as_no_email() -> None:
    # The engine decides: such a person is synced but not created (SPEC §6, one incomplete record).
    user = User(id="u1", username="x", email="", attributes={})
    assert TargetMapper("jira", config(mapping={"email": "   "})).desired(user, {}).email == ""


def test_empty_display_name_falls_back_to_the_username() -> None:
    user = User(id="u1", username="x", email="x@acme.com")
    assert TargetMapper("jira", config()).desired(user, {}).display_name == "x"


def test_per_target_override_merges_over_the_top_level_mapping() -> None:
    wiki = {
        "type": "confluence",
        "url": "https://w",
        "token": "t",
        "mapping": {"display_name": "{{ user.first_name }}"},
    }
    data = config(
        mapping={"username": "{{ user.email | localpart }}", "display_name": "{{ user.last_name }}"},
        targets={"jira": {"type": "jira", "url": "https://j", "token": "t"}, "wiki": wiki},
    )
    jira = TargetMapper("jira", data).desired(AMARA, {})
    confluence = TargetMapper("wiki", data).desired(AMARA, {})
    assert (jira.username, jira.display_name) == ("Amara.Kone", "Koné")
    assert (confluence.username, confluence.display_name) == ("Amara.Kone", "Amara")


def test_override_errors_name_the_target_key() -> None:
    mapper = TargetMapper("jira", config({"mapping": {"email": "{{ user.attributes.x }}"}}))
    with pytest.raises(MappingError, match=r"^target jira: targets\.jira\.mapping\.email for "):
        mapper.desired(AMARA, {})


# --- group rules ------------------------------------------------------------------

RULES = [
    {"from": "atlassian-jira-*", "to": "{{ group.name | replace('atlassian-', '') }}"},
    {"from": "engineering", "to": ["jira-developers", "dev-{{ user.attributes.department | slug }}"]},
    {"from": "ENGINEER*", "to": "jira-administrators", "privileged": True},
    {"from": "nobody-*", "to": "never"},
]


def test_rules_grant_groups_with_reasons() -> None:
    target = {"default_groups": ["jira-software-users"], "groups": RULES}
    account = TargetMapper("jira", config(target)).desired(AMARA, {})
    assert account.grants == (
        GroupGrant("jira-software-users", "default_groups", False),
        GroupGrant("jira-users", "rule 1 (from: atlassian-jira-*)", False),
        GroupGrant("jira-developers", "rule 2 (from: engineering)", False),
        GroupGrant("dev-r-d", "rule 2 (from: engineering)", False),
        GroupGrant("jira-administrators", "rule 3 (from: ENGINEER*)", True),
    )
    assert "scimsync-managed" not in account.groups  # the engine adds the owner group


def test_grants_dedupe_case_insensitively_and_any_privileged_rule_wins() -> None:
    target = {
        "default_groups": ["Jira-Users"],
        "groups": [
            {"from": "atlassian-jira-*", "to": "jira-users"},
            {"from": "everyone", "to": ["JIRA-USERS", "admins"]},
            {"from": "engineering", "to": "ADMINS", "privileged": True},
        ],
    }
    account = TargetMapper("jira", config(target)).desired(AMARA, {})
    assert account.grants == (
        GroupGrant(
            "Jira-Users", "default_groups; rule 1 (from: atlassian-jira-*); rule 2 (from: everyone)", False
        ),
        GroupGrant("admins", "rule 2 (from: everyone); rule 3 (from: engineering)", True),
    )


def test_rule_templates_see_group_id_and_name() -> None:
    rules = [{"from": "eng*", "to": "{{ group.name | lower }}-{{ group.id }}-{{ user.username }}"}]
    mapper = TargetMapper("jira", config({"groups": rules}))
    account = mapper.desired(AMARA, by_name(Group(id="00g1", name="Engineering")))
    assert account.groups == frozenset({"engineering-00g1-amara.k"})
    # A group the directory did not list (a file source) uses its name as id.
    assert mapper.desired(AMARA, {}).groups == frozenset({"engineering-Engineering-amara.k"})


def test_rule_render_failures_name_the_rule() -> None:
    rules = [{"from": "x", "to": "y"}, {"from": "eng*", "to": ["a", "{{ user.attributes.nope }}"]}]
    mapper = TargetMapper("jira", config({"groups": rules}))
    with pytest.raises(MappingError) as caught:
        mapper.desired(AMARA, {})
    assert str(caught.value).startswith(
        "target jira: targets.jira.groups[1].to[1] for source user 'u123' (amara.k): "
    )


def test_rule_rendering_an_empty_name_is_an_error() -> None:
    rules = [{"from": "everyone", "to": "{{ user.attributes.none | default('') }}"}]
    mapper = TargetMapper("jira", config({"groups": rules}))
    with pytest.raises(MappingError, match="rendered an empty group name"):
        mapper.desired(AMARA, {})


def test_managed_groups() -> None:
    target = {"default_groups": ["jira-software-users"], "groups": RULES}
    mapper = TargetMapper("jira", config(target, policy={"owner_group": "sync-owned"}))
    source_groups = ["atlassian-jira-users", "ATLASSIAN-JIRA-admins", "Engineering", "sales"]
    assert mapper.managed_groups(source_groups) == frozenset(
        {
            "jira-software-users",
            "sync-owned",
            "jira-users",
            "ATLASSIAN-JIRA-admins",  # replace() is case-sensitive: the rule's own business
            "jira-developers",
            "jira-administrators",
            "never",  # a constant `to`: managed though no source group matches `nobody-*`
        }
    )


@pytest.mark.parametrize(
    ("to", "source_groups", "managed"),
    [
        pytest.param(["jira-developers"], [], {"jira-developers"}, id="constant, no match"),
        pytest.param(["jira-developers"], ["engineering"], {"jira-developers"}, id="constant, match"),
        pytest.param(["{{ 'jira-' ~ 'qa' }}"], [], {"jira-qa"}, id="constant expression"),
        pytest.param(["{% set t = 'ops' %}jira-{{ t }}"], [], {"jira-ops"}, id="constant with set"),
        pytest.param(["{{ group.name }}-x"], [], set(), id="templated, no match"),
        pytest.param(["{{ group.name }}-x"], ["Eng-1", "sales"], {"Eng-1-x"}, id="templated, match"),
        pytest.param(["{{ user.username }}"], ["eng"], set(), id="templated on user: desired() names it"),
        pytest.param(["{{ 1 // 0 }}"], [], set(), id="constant that fails: desired() reports it"),
        pytest.param(
            ["jira-devs", "dev-{{ group.name | slug }}"], [], {"jira-devs"}, id="constant next to templated"
        ),
    ],
)
def test_managed_groups_of_constant_and_templated_rules(
    to: list[str], source_groups: list[str], managed: set[str]
) -> None:
    # A constant `to` stays managed after the IdP group is disbanded, so its members
    # are removed rather than keeping access forever.
    rules = [{"from": "eng*", "to": to}]
    mapper = TargetMapper("jira", config({"groups": rules}))
    assert mapper.managed_groups(source_groups) == frozenset({"scimsync-managed", *managed})


def test_managed_groups_without_rules_is_defaults_and_owner() -> None:
    mapper = TargetMapper("jira", config({"default_groups": ["a", "A"]}))
    assert mapper.managed_groups(["x"]) == frozenset({"a", "scimsync-managed"})


# --- scoping ----------------------------------------------------------------------

DIRECTORY = SourceDirectory(
    users=(
        User(id="1", username="ann", email="ann@acme.com", groups=("Atlassian-Jira-Users",)),
        User(id="2", username="svc-build", email="build@acme.com", groups=("atlassian-bots",)),
        User(id="3", username="bob", email="bob@contractor.io", groups=("atlassian-jira-users",)),
        User(id="4", username="cid", email="cid@acme.com", groups=("sales",)),
        User(id="5", username="dee", email="dee@acme.com", active=False, groups=("atlassian-x",)),
    )
)


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ([], [], ["1", "2", "3", "4", "5"]),
        (["atlassian-*"], [], ["1", "2", "3", "5"]),
        (["ATLASSIAN-JIRA-*"], [], ["1", "3"]),
        (["sales", "atlassian-bots"], [], ["2", "4"]),
        ([], ["svc-*"], ["1", "3", "4", "5"]),
        ([], ["*@CONTRACTOR.IO"], ["1", "2", "4", "5"]),
        (["atlassian-*"], ["svc-*", "*@contractor.io"], ["1", "5"]),
        (["nothing"], [], []),
    ],
)
def test_in_scope(include: list[str], exclude: list[str], expected: list[str]) -> None:
    users = in_scope(DIRECTORY, include_groups=include, exclude_users=exclude)
    assert [u.id for u in users] == expected


# --- the fast renderer: the same text and errors as Jinja, through the same sandbox ------

FIELDS = ("id", "username", "email", "first_name", "last_name", "display_name", "active", "groups")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(alphabet="aÉ@. -_xZ\n", max_size=8),
    st.lists(st.sampled_from(["a", "B"]), max_size=2),
    st.dictionaries(st.sampled_from(["dept", "items", "keys", "x"]), st.text(max_size=3), max_size=2),
)
# Attributes present, missing, a dict's own methods, and what the sandbox refuses.
STEPS = st.sampled_from(
    [*FIELDS, "attributes", "name", "dept", "items", "keys", "missing", "__class__", "_x"]
)


def jinja_outcome(source: str, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", make_environment().from_string(source).render(context)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def fast_outcome(source: str, context: dict[str, Any]) -> tuple[str, str]:
    renderer = compile_with_glob(source, where="w")[0]
    assert renderer.parts is not None, "expected the fast path"
    try:
        return "ok", renderer.render(context)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@st.composite
def lookups(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(["user", "group"]))
    for step in draw(st.lists(STEPS, min_size=0, max_size=3)):
        text += f".{step}" if draw(st.booleans()) else f"[{step!r}]"
    for name in draw(st.lists(st.sampled_from(sorted(PLAIN_FILTERS)), max_size=3)):
        text += f" | {name}"
    return "{{ " + text + " }}"


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(lookups(), st.sampled_from(["-", " ", "a@b", "\n", "x"])), max_size=4),
    user=st.one_of(st.none(), st.dictionaries(STEPS, VALUES, max_size=5)),
    group=st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "id", "items"]), VALUES, max_size=2)),
)
def test_the_fast_renderer_matches_jinja(parts: list[str], user: Any, group: Any) -> None:
    source = "".join(parts)
    context = {k: v for k, v in (("user", user), ("group", group)) if v is not None}
    assert fast_outcome(source, context) == jinja_outcome(source, context)


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("{{ user.email | localpart | lower }}", {"user": {"email": "A.B@X.COM"}}),
        ("{{ user.first_name }} {{ user.last_name }}", {"user": {"first_name": "A", "last_name": None}}),
        ("{{ user['email'] | upper }}!", {"user": {"email": "a@x"}}),
        ("{{ user.attributes.items }}", {"user": {"attributes": {"items": "shadowed"}}}),
        ("{{ user.attributes['items'] }}", {"user": {"attributes": {"items": "key"}}}),
        ("{{ user.attributes.dept }}", {"user": {"attributes": Record([("dept", "R&D")])}}),
        ("{{ user.groups }}/{{ user.active }}", {"user": {"groups": ["a"], "active": False}}),
        ("{{ user.nope }}", {"user": {}}),
        ("{{ user.email }}", {}),
        ("{{ group.name | slug }}", {"group": {"name": "Ünïcode Team"}}),
        ("{{ user.email | domain | trim | title | capitalize | string }}", {"user": {"email": "a@ x.com "}}),
        ("{{ user.__class__ }}", {"user": {}}),
        ("{{ user.email.__class__.__mro__ }}", {"user": {"email": "a"}}),
        ("{{ user.id | lower }}", {"user": {"id": None}}),
        ("{{ user.id | lower }}", {"user": {"id": 42}}),
        ("{{ user }}", {"user": "plain"}),
    ],
)
def test_fast_renderer_examples(source: str, context: dict[str, Any]) -> None:
    assert fast_outcome(source, context) == jinja_outcome(source, context)


def test_the_sandbox_still_refuses_internals_on_the_fast_path() -> None:
    renderer = compile_with_glob("{{ user.__class__.__mro__ }}", where="w")[0]
    assert renderer.parts is not None
    with pytest.raises(jinja2.exceptions.SecurityError):
        renderer.render({"user": {}})
    with pytest.raises(jinja2.UndefinedError, match="'user' is undefined"):
        compile_with_glob("{{ user.email }}", where="w")[0].render({})
    with pytest.raises(jinja2.UndefinedError, match="has no attribute 'nope'"):
        compile_with_glob("{{ user.nope }}", where="w")[0].render({"user": {}})


@pytest.mark.parametrize(
    "source",
    [
        "{% if user.email %}x{% endif %}",
        "{{ user.email | replace('a', 'b') }}",
        "{{ user.email | trim('x') }}",
        "{{ user.email | default }}",
        "{{ x.email }}",
        "{{ range }}",
        "{{ user[field] }}",
        "{{ user[0] }}",
        "{{ 'text' }}",
        "{{ user.email ~ 'x' }}",
        "{{ user.email() }}",
    ],
)
def test_other_templates_go_to_jinja(source: str) -> None:
    renderer = compile_with_glob(source, where="w")[0]
    assert renderer.parts is None
    context = {"user": {"email": "a@x", "0": "zero"}, "x": {"email": "e"}, "field": "email"}
    assert fast_or_jinja(renderer, context) == jinja_outcome(source, context)


def fast_or_jinja(renderer: Renderer, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", renderer.render(context)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("", ()),
        ("jira-users\n", ("jira-users",)),
        ("a{# note #}b", ("a", "b")),
        ("{{ group.name }}", (Lookup("group", ((True, "name"),), ()),)),
        (
            "x-{{ user['attributes'].dept | lower | slug }}",
            ("x-", Lookup("user", ((False, "attributes"), (True, "dept")), (do_lower, slug))),
        ),
    ],
)
def test_simple_parts(source: str, parts: tuple[Any, ...]) -> None:
    assert compile_with_glob(source, where="w")[0].parts == parts


def test_text_alone_is_rendered_once() -> None:
    renderer = compile_with_glob("jira-{# c #}users", where="w")[0]
    renderer.parts = None  # neither the parts nor Jinja are looked at again
    renderer.template = None  # type: ignore[assignment]
    assert renderer.render({}) == "jira-users"
    lookup = compile_with_glob("{{ user.id }}-x", where="w")[0]
    assert lookup.render({"user": {"id": "a"}}) == "a-x"
    assert lookup.render({"user": {"id": "b"}}) == "b-x"


def test_one_lookup_alone_is_its_value() -> None:
    renderer = compile_with_glob("{{ group.name | lower }}", where="w")[0]
    renderer.parts = None  # nothing to join: the lookup is called directly
    renderer.template = None  # type: ignore[assignment]
    assert renderer.render({"group": {"name": "Eng"}}) == "eng"


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.text(alphabet="aAb*?[]!-É", max_size=6),
    name=st.text(alphabet="aAb*?[]!-éÉ", max_size=6),
)
def test_rule_matching_is_glob_match(pattern: str, name: str) -> None:
    rule = _Rule(1, pattern, False, ())
    assert rule.matches(name) == glob_match(name, pattern)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("Atlassian-*", "atlassian-jira", True),
        ("atlassian-*", "ATLASSIAN-X", True),
        ("team-[ab]", "TEAM-B", True),
        ("team-?", "team-10", False),
        ("dept-*", "xdept-1", False),
        ("a.b", "aXb", False),
    ],
)
def test_rule_matching_examples(pattern: str, name: str, matches: bool) -> None:
    assert _Rule(1, pattern, False, ()).matches(name) is matches


def test_default_and_constant_grants_are_the_same_for_everyone() -> None:
    rules = [{"from": "everyone", "to": ["jira-users", "{{ group.name }}-x"]}]
    mapper = TargetMapper("jira", config({"default_groups": ["jira-software-users"], "groups": rules}))
    bob = User(id="u2", username="bob", email="b@x", groups=("Everyone",))
    first, second = mapper.desired(AMARA, {}), mapper.desired(bob, {})
    assert [(g.group, g.reason, g.template) for g in first.grants] == [
        ("jira-software-users", "default_groups", None),
        ("jira-users", "rule 1 (from: everyone)", None),
        ("everyone-x", "rule 1 (from: everyone)", "everyone -> {{ group.name }}-x"),
    ]
    assert [g.group for g in second.grants] == ["jira-software-users", "jira-users", "Everyone-x"]
