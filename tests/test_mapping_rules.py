"""Group rules remembered and produced (SPEC §5), template checks (§3), the guards (§6) and
the re-checks of a saved plan's operations (§6), pinned on hand-written expectations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scimsync.config import Config, parse_config
from scimsync.engine.effects import Ownership, _same, apply_effect, apply_to_directory, check
from scimsync.engine.guards import GuardLimits, check_guards, check_saved_plan
from scimsync.engine.plan import FieldChange, GuardViolation, Operation, OpKind, TargetPlan
from scimsync.errors import ConfigError
from scimsync.mapping import MappingError, TargetMapper, merge_grants
from scimsync.models import Account, DesiredAccount, GroupGrant, TargetDirectory, User, glob_match
from scimsync.templates import RULE_NAMES, glob_of, make_environment, template_problem

ANN = User(
    id="s1",
    username="ann",
    email="ann@acme.com",
    groups=("atlassian-jira-users", "Engineering", "team-blue"),
    attributes={"team": "Blue"},
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


def mapper(*rules: dict[str, Any]) -> TargetMapper:
    return TargetMapper("jira", config({"groups": list(rules)}))


# --- the glob a templated `to` fits -------------------------------------------------


@pytest.mark.parametrize(
    ("source", "glob"),
    [
        pytest.param("jira-{{ group.name }}", "jira-*", id="prefix"),
        pytest.param("{{ group.name }}-team", "*-team", id="suffix"),
        pytest.param("{{ group.name }}", "*", id="name only"),
        pytest.param("{{ group.name }}{{ group.id }}", "*", id="adjacent expressions collapse"),
        pytest.param("x-{{ group.name }}-{{ group.id }}", "x-*-*", id="text between stays"),
        pytest.param("a*b?-{{ group.name }}", "a[*]b[?]-*", id="literal star and question mark"),
        pytest.param("[x]-{{ group.name }}", "[[]x]-*", id="literal bracket"),
        pytest.param("jira-devs", "jira-devs", id="constant"),
        pytest.param(" jira-{{ group.name }}\n", "jira-*", id="rendered names are stripped"),
        pytest.param("{% if group.name %}jira-x{% endif %}", None, id="statement: unknown"),
        pytest.param("jira-{% for g in user.groups %}{{ g }}{% endfor %}", None, id="loop: unknown"),
    ],
)
def test_glob_of_a_template(source: str, glob: str | None) -> None:
    assert glob_of(make_environment().parse(source)) == glob


def test_literal_glob_characters_only_match_themselves() -> None:
    glob = glob_of(make_environment().parse("a*b[1]-{{ group.name }}"))
    assert glob is not None
    assert glob_match("A*B[1]-ops", glob)
    assert not glob_match("aXXb[1]-ops", glob)
    assert not glob_match("a*b1-ops", glob)


# --- remembered(): which groups from earlier runs stay managed ----------------------

JIRA = {"from": "atlassian-jira-*", "to": "jira-{{ group.name | replace('atlassian-jira-', '') }}"}
JIRA_KEY = "atlassian-jira-* -> jira-{{ group.name | replace('atlassian-jira-', '') }}"
TEAM = {"from": "team-*", "to": "{{ group.name }}"}
TEAM_KEY = "team-* -> {{ group.name }}"
CONSTANT = {"from": "engineering", "to": "jira-developers"}
CONSTANT_KEY = "engineering -> jira-developers"
CONDITIONAL = {"from": "eng*", "to": "{% if user.active %}dev-{{ group.name }}{% endif %}"}
CONDITIONAL_KEY = "eng* -> {% if user.active %}dev-{{ group.name }}{% endif %}"


def test_remembered_groups_fit_their_rule() -> None:
    memory = {JIRA_KEY: ["jira-users", "JIRA-Ops", "confluence-users", "users"]}
    assert mapper(JIRA).remembered(memory, []) == {JIRA_KEY: {"jira-users", "JIRA-Ops"}}


def test_a_template_of_only_the_group_name_falls_back_to_the_rules_from() -> None:
    # `{{ group.name }}` could name any group: only names that fit `team-*` are trusted.
    memory = {TEAM_KEY: ["team-red", "TEAM-Green", "jira-users", "administrators"]}
    assert mapper(TEAM).remembered(memory, []) == {TEAM_KEY: {"team-red", "TEAM-Green"}}


def test_privileged_groups_are_never_remembered() -> None:
    memory = {TEAM_KEY: ["team-admins", "team-red", "team-root"]}
    remembered = mapper(TEAM).remembered(memory, ["Team-Admins", "team-root"])
    assert remembered == {TEAM_KEY: {"team-red"}}


def test_a_rule_no_longer_configured_forgets_its_groups() -> None:
    memory = {
        JIRA_KEY: ["jira-users"],
        "atlassian-jira-* -> jira-{{ group.name }}": ["jira-atlassian-jira-ops"],  # `to` edited since
        "atlassian-* -> jira-{{ group.name | replace('atlassian-jira-', '') }}": ["jira-x"],  # `from`
        CONSTANT_KEY: ["jira-developers"],  # a constant `to` is managed anyway, never remembered
    }
    assert mapper(JIRA, CONSTANT).remembered(memory, []) == {JIRA_KEY: {"jira-users"}}


def test_a_template_with_statements_remembers_nothing() -> None:
    memory = {CONDITIONAL_KEY: ["dev-engineering"], TEAM_KEY: ["team-red"]}
    assert mapper(CONDITIONAL, TEAM).remembered(memory, []) == {TEAM_KEY: {"team-red"}}


def test_remembered_with_several_rules_and_nothing_left() -> None:
    memory = {JIRA_KEY: ["confluence-users"], TEAM_KEY: ["team-red"]}
    assert mapper(JIRA, TEAM).remembered(memory, []) == {JIRA_KEY: set(), TEAM_KEY: {"team-red"}}


# --- produced(): what the rules name today -------------------------------------------

PER_USER = {"from": "eng*", "to": ["jira-all", "dev-{{ user.username }}"]}
PER_USER_KEY = "eng* -> dev-{{ user.username }}"


def test_produced_from_source_groups_and_desired_accounts() -> None:
    rules = mapper(JIRA, PER_USER, CONSTANT)
    desired = rules.desired(ANN, {})
    produced = rules.produced(
        ["atlassian-jira-users", "Atlassian-Jira-Ops", "engineering", "sales"], [desired]
    )
    assert produced == {
        # from the source groups alone; replace() is case-sensitive, the rule's own business
        JIRA_KEY: {"jira-users", "jira-Atlassian-Jira-Ops"},
        # needs the user: known only from the desired accounts
        PER_USER_KEY: {"dev-ann"},
    }


def test_produced_has_an_entry_per_templated_to_even_when_empty() -> None:
    assert mapper(JIRA, TEAM, CONSTANT).produced([], []) == {JIRA_KEY: set(), TEAM_KEY: set()}


def test_produced_reads_the_grants_memory_keys() -> None:
    grants = (
        GroupGrant("jira-software-users", "default_groups"),
        GroupGrant("jira-developers", "rule 2 (from: engineering)"),
        GroupGrant("team-red", "rule 1 (from: team-*)", template=TEAM_KEY),
    )
    account = DesiredAccount("s1", "ann", "ann", "ann@acme.com", "Ann", True, grants)
    assert mapper(TEAM, CONSTANT).produced(["sales"], [account]) == {TEAM_KEY: {"team-red"}}


# --- grants carry their memory key ------------------------------------------------


def test_grants_of_templated_tos_carry_the_memory_key_constants_none() -> None:
    rules = mapper(JIRA, PER_USER, TEAM)
    grants = {g.group: g.template for g in rules.desired(ANN, {}).grants}
    assert grants == {
        "jira-users": JIRA_KEY,
        "jira-all": None,
        "dev-ann": PER_USER_KEY,
        "team-blue": TEAM_KEY,
    }


def test_an_empty_group_name_names_the_rule_target_and_cause() -> None:
    rules = mapper(CONSTANT, {"from": "team-*", "to": "{{ user.attributes.nothing | default('') }}"})
    with pytest.raises(MappingError) as caught:
        rules.desired(ANN, {})
    error = caught.value
    assert (error.target, error.where, error.user, error.cause) == (
        "jira",
        "targets.jira.groups[1].to[0]",
        ANN,
        "rendered an empty group name",
    )


def test_an_empty_username_is_a_mapping_error_with_its_fields() -> None:
    mapping = TargetMapper("jira", config({"mapping": {"username": "{{ user.attributes.team | lower }}"}}))
    nobody = User(id="s9", username="x", email="x@acme.com", attributes={"team": " "})
    with pytest.raises(MappingError) as caught:
        mapping.desired(nobody, {})
    error = caught.value
    assert (error.target, error.where, error.cause) == (
        "jira",
        "targets.jira.mapping.username",
        "rendered an empty username",
    )


def test_a_template_that_does_not_compile_names_its_key() -> None:
    # Validation rejects these first; a Config built without it still gets the key named.
    valid = config({"groups": [{"from": "a", "to": "x"}]})
    mapping = valid.mapping.model_copy(update={"username": "{{ user.id }"})
    with pytest.raises(ConfigError) as caught:
        TargetMapper("jira", valid.model_copy(update={"mapping": mapping}))
    assert caught.value.problems == ["mapping.username: template error: unexpected '}' (line 1)"]
    jira = valid.targets["jira"]
    rule = jira.groups[0].model_copy(update={"to": ["x", "{{ group.name }"]})
    targets = {"jira": jira.model_copy(update={"groups": [rule]})}
    with pytest.raises(ConfigError) as caught:
        TargetMapper("jira", valid.model_copy(update={"targets": targets}))
    assert caught.value.problems == ["targets.jira.groups[0].to[1]: template error: unexpected '}' (line 1)"]


# --- merge_grants -------------------------------------------------------------------


def test_merge_joins_reasons_once_each() -> None:
    merged = merge_grants(
        [
            GroupGrant("jira-users", "rule 1 (from: a b)"),
            GroupGrant("JIRA-USERS", "rule 2 (from: c)"),
            GroupGrant("Jira-Users", "rule 1 (from: a b)"),
        ]
    )
    assert merged == (GroupGrant("jira-users", "rule 1 (from: a b); rule 2 (from: c)"),)


def test_merge_keeps_a_memory_key_from_any_grant() -> None:
    merged = merge_grants(
        [
            GroupGrant("team-red", "default_groups"),
            GroupGrant("team-red", "rule 1 (from: team-*)", template=TEAM_KEY),
            GroupGrant("jira-x", "rule 1 (from: x)", template="x -> jira-{{ group.name }}"),
            GroupGrant("jira-x", "rule 2 (from: y)", template="y -> jira-{{ group.name }}"),
        ]
    )
    assert [(g.group, g.reason, g.template) for g in merged] == [
        ("team-red", "default_groups; rule 1 (from: team-*)", TEAM_KEY),
        ("jira-x", "rule 1 (from: x); rule 2 (from: y)", "x -> jira-{{ group.name }}"),
    ]


# --- template checks (SPEC §3) -------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "names", "problem"),
    [
        pytest.param(
            "{{ user.firstname }}",
            RULE_NAMES,
            "template error: unknown name 'user.firstname' (did you mean 'user.first_name'?)",
            id="closest name",
        ),
        pytest.param(
            "{{ user.EMAIL }}",
            RULE_NAMES,
            "template error: unknown name 'user.EMAIL' (did you mean 'user.email'?)",
            id="closest ignoring case",
        ),
        pytest.param(
            "{{ user['emial'] }}",
            RULE_NAMES,
            "template error: unknown name 'user.emial' (did you mean 'user.email'?)",
            id="subscript",
        ),
        pytest.param(
            "{{ group.nmae }}",
            RULE_NAMES,
            "template error: unknown name 'group.nmae' (did you mean 'group.name'?)",
            id="group field",
        ),
        pytest.param(
            "{{ group.title }}",
            RULE_NAMES,
            "template error: unknown name 'group.title' (available: group.name, group.id)",
            id="nothing close",
        ),
        pytest.param(
            "{{ user.zzz }}",
            RULE_NAMES,
            "template error: unknown name 'user.zzz' (available: user.id, user.username, user.email, "
            "user.first_name, user.last_name, user.display_name, user.active, user.groups, "
            "user.attributes)",
            id="nothing close lists every user field",
        ),
        pytest.param(
            "{{ user.attributes.anything }}-{{ user.usrname }}-{{ user.emial }}",
            RULE_NAMES,
            "template error: unknown name 'user.usrname' (did you mean 'user.username'?)",
            id="attributes are free; the first unknown of several is named",
        ),
        pytest.param("{{ user.attributes['cost center'].x }}", RULE_NAMES, None, id="deep attributes"),
        pytest.param("{{ user[field] }}", frozenset({"user", "field"}), None, id="computed: left to render"),
        pytest.param(
            "{% set group = user.attributes.team %}{{ group.upper() }}",
            RULE_NAMES,
            None,
            id="a local named like a variable is not checked",
        ),
        pytest.param(
            "{{ missing }}",
            RULE_NAMES,
            "template error: unknown name 'missing' (available: group, user)",
            id="unknown variable lists the names",
        ),
    ],
)
def test_template_problems(source: str, names: frozenset[str], problem: str | None) -> None:
    assert template_problem(source, names=names) == problem


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'first@second@x.com' | domain }}", "x.com"),
        ("{{ 'first@second@x.com' | localpart }}", "first@second"),
        ("{{ '@x.com' | domain }}", "x.com"),
        ("{{ 'ann@' | domain }}", ""),
    ],
)
def test_address_filters_split_at_the_last_at(source: str, expected: str) -> None:
    assert make_environment().from_string(source).render() == expected


# --- guards (SPEC §6) ----------------------------------------------------------------


def gone(count: int, target: str = "jira", *, kind: OpKind = OpKind.DEACTIVATE_USER) -> tuple[Operation, ...]:
    return tuple(
        Operation(kind, target, f"u{i}", "left the source", account_id=f"K{i}") for i in range(count)
    )


def target_plan(name: str = "jira", *ops: Operation, owned: int = 100, **kw: Any) -> TargetPlan:
    return TargetPlan(name, "jira", operations=ops, owned_count=owned, active_owned_count=owned, **kw)


def summary(violations: Sequence[GuardViolation]) -> list[tuple[str, str, int, int]]:
    return [(v.guard, v.target, v.count, v.limit) for v in violations]


def test_saved_plan_recounts_leavers_from_its_operations() -> None:
    # A hand-edited file saying "leavers: 0" cannot slip 11 deactivations past a limit of 10.
    plan = target_plan("jira", *gone(11), leavers=0)
    found = check_saved_plan([plan], active_source_users=50, limits=GuardLimits(max_deactivations=10))
    assert summary(found) == [("max_deactivations", "jira", 11, 10)]
    assert found[0].message == (
        "max_deactivations: plan deprovisions 11 accounts on target 'jira', limit is 10 "
        "(policy.max_deactivations); check the source, or re-run with --allow-deactivations 11"
    )


def test_saved_plan_within_its_limit_passes() -> None:
    plan = target_plan("jira", *gone(10))
    assert check_saved_plan([plan], active_source_users=50, limits=GuardLimits(max_deactivations=10)) == ()


def test_saved_plan_checks_every_target_and_skips_failed_ones() -> None:
    plans = [
        target_plan("jira", *gone(3)),
        target_plan("wiki", *gone(30, "wiki"), error="unreachable"),
        target_plan("cloud", owned=4),
    ]
    found = check_saved_plan(plans, active_source_users=0, limits=GuardLimits(max_deactivations=2))
    assert summary(found) == [
        ("max_deactivations", "jira", 3, 2),
        ("empty_source", "jira", 100, 0),
        ("empty_source", "cloud", 4, 0),
    ]
    assert found[2].message == (
        "empty_source: the source returned 0 in-scope active users while target 'cloud' has "
        "4 owned accounts; refusing to deprovision (re-run with --allow-deactivations 4 if this "
        "is really intended)"
    )


def test_saved_plan_empty_source_acknowledged() -> None:
    plans = [target_plan("jira", owned=4)]
    limits = GuardLimits(allow_deactivations=0)
    assert check_saved_plan(plans, active_source_users=0, limits=limits) == ()


@pytest.mark.parametrize(
    ("count", "text"),
    [(1, "plan deprovisions 1 account on"), (2, "plan deprovisions 2 accounts on")],
)
def test_leaver_count_pluralised(count: int, text: str) -> None:
    (violation,) = check_guards(
        [target_plan("jira", *gone(count))],
        {},
        active_source_users=5,
        limits=GuardLimits(max_deactivations=0),
    )
    assert text in violation.message


@pytest.mark.parametrize(("owned", "text"), [(1, "has 1 owned account;"), (2, "has 2 owned accounts;")])
def test_owned_count_pluralised(owned: int, text: str) -> None:
    (violation,) = check_guards([target_plan(owned=owned)], {}, active_source_users=0, limits=GuardLimits())
    assert text in violation.message


def test_allowed_limit_is_named_in_the_message() -> None:
    (violation,) = check_guards(
        [target_plan("jira", *gone(6))],
        {},
        active_source_users=5,
        limits=GuardLimits(max_deactivations=1, allow_deactivations=5),
    )
    assert violation.message == (
        "max_deactivations: plan deprovisions 6 accounts on target 'jira', limit is 5 "
        "(--allow-deactivations); check the source, or re-run with --allow-deactivations 6"
    )


PRIVILEGED = frozenset({"jira-administrators", "site-admins"})


def add(account: str, group: str, target: str = "jira", source_id: str | None = None) -> Operation:
    return Operation(OpKind.ADD_MEMBER, target, account, "rule", group=group, source_id=source_id)


def wanted(source_id: str, username: str, *grants: GroupGrant) -> DesiredAccount:
    return DesiredAccount(source_id, username, username, f"{username}@acme.com", username, True, grants)


def privileged(
    plans: Sequence[TargetPlan], desired: Mapping[str, Sequence[DesiredAccount]], active: int = 5
) -> tuple[GuardViolation, ...]:
    limits = GuardLimits(privileged_groups=PRIVILEGED)
    return check_guards(plans, desired, active_source_users=active, limits=limits)


def test_guards_report_every_target_not_only_the_last() -> None:
    plans = [
        target_plan("jira", *gone(30)),
        target_plan("down", *gone(30, "down"), error="unreachable"),
        target_plan("wiki", *gone(26, "wiki")),
        target_plan("cloud", add("ann", "site-admins", "cloud")),
    ]
    found = privileged(plans, {})
    assert summary(found) == [
        ("max_deactivations", "jira", 30, 25),
        ("max_deactivations", "wiki", 26, 25),
        ("privileged_group", "cloud", 1, 0),
    ]


def test_privileged_violations_per_group_with_counts() -> None:
    ops = (
        add("ann", "jira-users"),
        Operation(OpKind.REMOVE_MEMBER, "jira", "ann", "rule", group="jira-administrators"),
        add("ann", "Jira-Administrators"),
        add("bob", "jira-administrators"),
        add("cid", "JIRA-ADMINISTRATORS"),
        add("dee", "site-admins"),
        add("eve", "site-admins"),
    )
    grant = GroupGrant("jira-administrators", "rule 2 (from: eng*)")
    desired = {
        "jira": [
            wanted(s, s, grant, GroupGrant("site-admins", "rule 3 (from: ops)"))
            for s in ["ann", "bob", "cid", "dee", "eve"]
        ]
    }
    found = privileged([target_plan("jira", *ops)], desired)
    assert [v.message for v in found] == [
        "privileged_group: rule 'rule 2 (from: eng*)' would add 'ann' (and 2 more) to privileged group "
        "'Jira-Administrators' on target 'jira'; mark the rule privileged: true if intended",
        "privileged_group: rule 'rule 3 (from: ops)' would add 'dee' (and 1 more) to privileged group "
        "'site-admins' on target 'jira'; mark the rule privileged: true if intended",
    ]
    assert summary(found) == [("privileged_group", "jira", 3, 0), ("privileged_group", "jira", 2, 0)]


def test_a_single_privileged_addition_says_no_more() -> None:
    desired = {"jira": [wanted("s1", "ann", GroupGrant("site-admins", "rule 1 (from: x)"))]}
    (violation,) = privileged([target_plan("jira", add("ann", "site-admins"))], desired)
    assert violation.message == (
        "privileged_group: rule 'rule 1 (from: x)' would add 'ann' to privileged group 'site-admins' "
        "on target 'jira'; mark the rule privileged: true if intended"
    )


def test_an_addition_no_grant_explains_is_unvouched() -> None:
    # No desired accounts for the target at all, or an account without a grant for the group.
    desired = {"jira": [wanted("s1", "ann", GroupGrant("jira-users", "default_groups"))]}
    for plans in (
        [target_plan("wiki", add("ann", "site-admins", "wiki"))],
        [target_plan("jira", add("ann", "site-admins"))],
    ):
        (violation,) = privileged(plans, desired)
        assert violation.message.startswith("privileged_group: rule 'unknown' would add 'ann' ")


def test_one_privileged_rule_vouches_whatever_other_rules_name_the_group() -> None:
    grants = (
        GroupGrant("site-admins", "rule 1 (from: everyone)"),
        GroupGrant("SITE-ADMINS", "rule 2 (from: admins)", privileged_ok=True),
    )
    desired = {"jira": [wanted("s1", "ann", *grants)]}
    assert privileged([target_plan("jira", add("ann", "site-admins", source_id="s1"))], desired) == ()


def test_the_grant_is_the_one_of_the_operations_source_user() -> None:
    desired = {
        "jira": [
            wanted("s1", "ann", GroupGrant("jira-users", "default_groups")),
            wanted("s2", "bob", GroupGrant("site-admins", "rule 4 (from: admins)", privileged_ok=True)),
        ]
    }
    # The account is renamed: its username no longer names the desired account, the source id does.
    op = add("robert", "site-admins", source_id="s2")
    assert privileged([target_plan("jira", op)], desired) == ()


# --- effects: ownership of a saved plan's accounts (SPEC §5-6) -----------------------

BOB = Account("K1", "bob", "bob@x.io", "Bob", groups=frozenset({"jira-users"}))


def op(kind: OpKind, *changes: FieldChange, **kw: Any) -> Operation:
    return Operation(kind, "jira", kw.pop("account", "bob"), "test", changes=changes, **kw)


def adopt(
    account_id: str, group: str = "SCIMSYNC-Managed", how: str = "username", value: str = "bob"
) -> Operation:
    expected = {"member": False, "matched_by": how, "match_value": value}
    return op(OpKind.ADD_MEMBER, account_id=account_id, group=group, expected=expected)


def ownership(*ops: Operation, marker: str = "group", protected: tuple[str, ...] = ("adm*",)) -> Ownership:
    plan = target_plan("jira", *ops)
    return Ownership.of(plan, owner_group="scimsync-managed", owner_marker=marker, protected=protected)


def test_only_adding_the_owner_group_adopts() -> None:
    rules = ownership(
        adopt("K1"),
        adopt("K2", group="jira-users"),
        op(OpKind.REMOVE_MEMBER, account_id="K3", group="scimsync-managed", expected={"member": True}),
        adopt("", value="new"),  # an account this plan creates has no id yet
        op(OpKind.DEACTIVATE_USER, account_id="K4", expected={"active": True}),
    )
    assert rules.adopted == {"K1": ("username", "bob")}
    update = op(OpKind.UPDATE_USER, FieldChange("email", "a", "b"), account_id="K2")
    unmarked = replace(BOB, id="K2")
    assert rules.problem(update, unmarked) == (
        "'bob' no longer carries the owner marker, so scimsync does not own it"
    )
    assert rules.problem(update, BOB) is None  # K1: adopted by this plan, still matching


@pytest.mark.parametrize(
    ("fresh", "problem"),
    [
        pytest.param(BOB, None, id="adopted, matching"),
        pytest.param(replace(BOB, username="BOB"), None, id="adopted, matching in another case"),
        pytest.param(
            replace(BOB, username="robert"),
            "'robert' no longer matches by username as it did when the plan was made",
            id="adopted, renamed since",
        ),
        pytest.param(replace(BOB, groups=frozenset({"Scimsync-Managed"})), None, id="marked"),
        pytest.param(replace(BOB, username="admin"), "'admin' is a protected user", id="protected now"),
    ],
)
def test_ownership_problems(fresh: Account, problem: str | None) -> None:
    update = op(OpKind.UPDATE_USER, FieldChange("email", "a", "b"), account_id="K1")
    assert ownership(adopt("K1")).problem(update, fresh) == problem


def test_adopted_by_email() -> None:
    rules = ownership(adopt("K1", how="email", value="Bob@X.io"))
    update = op(OpKind.UPDATE_USER, FieldChange("display_name", "Bob", "Bobby"), account_id="K1")
    assert rules.problem(update, BOB) is None
    assert rules.problem(update, replace(BOB, email="bobby@x.io")) == (
        "'bob' no longer matches by email as it did when the plan was made"
    )


def test_a_protected_name_in_the_operation_protects_the_account() -> None:
    deactivate = op(OpKind.DEACTIVATE_USER, account="administrator", account_id="K1")
    marked = replace(BOB, username="sa", groups=frozenset({"scimsync-managed"}))
    assert ownership().problem(deactivate, marked) == "'sa' is a protected user"


def test_external_id_marker() -> None:
    rules = ownership(marker="external_id")
    deactivate = op(OpKind.DEACTIVATE_USER, account_id="K1")
    assert rules.problem(deactivate, replace(BOB, external_id="s1")) is None
    assert rules.problem(deactivate, replace(BOB, groups=frozenset({"scimsync-managed"}))) == (
        "'bob' no longer carries the owner marker, so scimsync does not own it"
    )


def test_creations_and_gone_accounts_have_no_ownership_problem() -> None:
    rules = ownership()
    assert rules.problem(op(OpKind.CREATE_USER), replace(BOB, username="admin")) is None
    assert rules.problem(op(OpKind.CREATE_GROUP, group="g"), BOB) is None
    assert rules.problem(op(OpKind.DELETE_USER, account_id="K1"), None) is None


# --- effects: is an operation still wanted? ----------------------------------------

CREATE = op(
    OpKind.CREATE_USER,
    FieldChange("username", None, "bob"),
    FieldChange("email", None, "bob@x.io"),
    FieldChange("display_name", None, "Bob"),
    expected={"exists": False},
    source_id="s1",
)


@pytest.mark.parametrize(
    ("fresh", "result"),
    [
        pytest.param(replace(BOB, username="robert"), "done", id="username not compared"),
        pytest.param(replace(BOB, email=None), "done", id="email never shown"),
        pytest.param(replace(BOB, email="BOB@X.IO"), "done", id="email in another case"),
        pytest.param(replace(BOB, display_name="BOB"), "stale", id="display name is case-sensitive"),
        pytest.param(replace(BOB, email="else@x.io"), "stale", id="someone else"),
    ],
)
def test_check_create(fresh: Account, result: str) -> None:
    assert check(CREATE, fresh) == result


@pytest.mark.parametrize(
    ("operation", "fresh", "result"),
    [
        pytest.param(op(OpKind.DEACTIVATE_USER, account_id="K1"), BOB, "apply", id="deactivate, active"),
        pytest.param(
            op(OpKind.DEACTIVATE_USER, account_id="K1"), replace(BOB, active=False), "done", id="deactivated"
        ),
        pytest.param(
            op(OpKind.REACTIVATE_USER, account_id="K1"), replace(BOB, active=False), "apply", id="reactivate"
        ),
        pytest.param(op(OpKind.ADD_MEMBER, account_id="K1", group="jira-devs"), BOB, "apply", id="add"),
        pytest.param(
            op(OpKind.REMOVE_MEMBER, account_id="K1", group="Jira-Users"), BOB, "apply", id="remove"
        ),
        pytest.param(op(OpKind.REMOVE_MEMBER, account_id="K1", group="jira-devs"), BOB, "done", id="removed"),
    ],
)
def test_check_flag_without_expected_state_assumes_the_opposite(
    operation: Operation, fresh: Account, result: str
) -> None:
    assert check(operation, fresh) == result


@pytest.mark.parametrize(
    ("fresh", "result"),
    [
        pytest.param(replace(BOB, email="seen@x.io", display_name="B"), "apply", id="as the plan saw it"),
        pytest.param(replace(BOB, email="new@x.io", display_name="B"), "apply", id="one done, one to apply"),
        pytest.param(replace(BOB, email="NEW@x.io", display_name="Bob"), "done", id="both done"),
        pytest.param(replace(BOB, email="old@x.io", display_name="B"), "stale", id="not what the plan saw"),
        pytest.param(replace(BOB, email="new@x.io", display_name="BOB"), "stale", id="display name case"),
    ],
)
def test_check_update(fresh: Account, result: str) -> None:
    # `expected` holds what the plan saw; it wins over the change's `old`.
    update = op(
        OpKind.UPDATE_USER,
        FieldChange("email", "old@x.io", "new@x.io"),
        FieldChange("display_name", "B", "Bob"),
        account_id="K1",
        expected={"email": "seen@x.io", "display_name": "B"},
    )
    assert check(update, fresh) == result


def test_same_treats_none_as_unknown() -> None:
    assert _same("email", None, None)
    assert not _same("email", None, "")
    assert not _same("email", "", None)
    assert not _same("display_name", None, "")
    assert _same("email", "A@x.io", "a@X.IO")
    assert not _same("display_name", "Bob", "bob")


# --- effects: applying operations ------------------------------------------------


def test_created_account() -> None:
    created = apply_effect(replace(CREATE, account="typed-name"), None)
    assert created == Account("new:bob", "bob", "bob@x.io", "Bob", active=True, external_id="s1")
    bare = apply_effect(op(OpKind.CREATE_USER, account="ann", account_id="K7", source_id="s2"), None)
    assert bare == Account("K7", "ann", "", "", active=True, external_id="s2")


def test_adding_a_member_twice_changes_nothing() -> None:
    again = op(OpKind.ADD_MEMBER, account_id="K1", group="JIRA-USERS")
    assert apply_effect(again, BOB) == BOB
    added = apply_effect(op(OpKind.ADD_MEMBER, account_id="K1", group="jira-devs"), BOB)
    assert added is not None and added.groups == frozenset({"jira-users", "jira-devs"})


def test_apply_to_directory() -> None:
    ann = Account("K2", "ann", "ann@x.io", "Ann")
    directory = TargetDirectory(accounts=(BOB, ann), groups=frozenset({"jira-users"}))
    ops = [
        op(OpKind.CREATE_GROUP, account="JIRA-Users", group="JIRA-Users"),
        op(OpKind.CREATE_GROUP, account="jira-devs", group="jira-devs"),
        op(OpKind.CREATE_GROUP, account="Jira-Devs", group="Jira-Devs"),
        op(OpKind.DELETE_USER, account="bob", account_id="K1"),
        op(OpKind.ADD_MEMBER, account="ANN", group="jira-devs"),
    ]
    after = apply_to_directory(directory, ops)
    assert after.groups == frozenset({"jira-users", "jira-devs"})
    assert after.accounts == (replace(ann, groups=frozenset({"jira-devs"})),)


def test_apply_to_directory_refuses_an_unknown_account() -> None:
    directory = TargetDirectory(accounts=(BOB,))
    with pytest.raises(ValueError, match="update_user of 'ghost': no such account"):
        apply_to_directory(
            directory, [op(OpKind.UPDATE_USER, FieldChange("email", "a", "b"), account="ghost")]
        )


def test_templated_globs_are_the_shapes_of_the_templated_rules_only() -> None:
    m = mapper(
        {"from": "team-*", "to": ["jira-{{ group.name }}", "jira-users"]},
        {"from": "eng-*", "to": "{{ group.name }}"},  # only the group name: the rule's `from`
    )
    assert m.templated_globs() == ("jira-*", "eng-*")
    assert mapper({"from": "x", "to": "jira-users"}).templated_globs() == ()
