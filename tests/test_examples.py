"""The scheduling examples and the docs are true: every example config validates, every
`scimsync ...` command shown in README.md, docs/ and examples/ parses against the real
command line, the cron wrapper mails only what needs a person, and the README and docs
cite only what a user has.

Commands are found the way a reader sees them: in markdown, in `inline code` starting with
`scimsync` and in fenced code blocks; in the example files (shell, YAML, systemd units), on
every line, with comments read like markdown prose (only their `inline code`). Each command
is then run through click with every command's callback replaced by a recorder: the parse is
click's own, so an unknown subcommand or option, a bad choice or a missing value fails here.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from scimsync.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCHEDULERS = ("cron", "systemd", "github-actions", "gitlab-ci", "kubernetes")
DOCS = sorted((ROOT / "docs").glob("*.md"))
EXAMPLE_FILES = sorted(p for p in EXAMPLES.rglob("*") if p.is_file())
CONFIGS = sorted(EXAMPLES.rglob("scimsync.yaml"))
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME}; ${NAME:-default} needs no value
SECRET_KEYS = {"token", "password", "client_secret"}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _variables(config: Path) -> list[str]:
    """The ${NAME}s the config's values read (not those its comments mention)."""
    values = _strings(yaml.safe_load(config.read_text(encoding="utf-8")))
    return sorted({name for value in values for name in VARIABLE.findall(value)})


# --- the example configs -------------------------------------------------------------------


def test_every_scheduler_has_an_example_with_a_config() -> None:
    assert {p.parent.relative_to(EXAMPLES).parts[0] for p in CONFIGS} == set(SCHEDULERS)
    assert (ROOT / "docs" / "scheduling.md").is_file()


@pytest.mark.parametrize("config", CONFIGS, ids=_rel)
def test_example_config_validates(config: Path) -> None:
    names = _variables(config)
    assert names, f"{_rel(config)} takes no secret from the environment"
    env = {name: f"dummy-{name.lower()}" for name in names}
    result = CliRunner().invoke(cli, ["-c", str(config), "validate"], env=env)
    assert result.exit_code == 0, result.output
    assert f"config OK: {config}" in result.output
    for value in env.values():
        assert value not in result.output


@pytest.mark.parametrize("config", CONFIGS, ids=_rel)
def test_example_config_fails_without_its_secrets(config: Path) -> None:
    """The ${NAME}s are really read: without them `validate` fails, naming a variable."""
    env: dict[str, str | None] = dict.fromkeys(_variables(config))
    result = CliRunner().invoke(cli, ["-c", str(config), "validate"], env=env)
    assert result.exit_code == 1
    assert any(name in result.output for name in env), result.output


def _secret_values(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else str(k)
            if k in SECRET_KEYS:
                yield here, v
            yield from _secret_values(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _secret_values(v, f"{path}[{i}]")


@pytest.mark.parametrize("config", CONFIGS, ids=_rel)
def test_example_secrets_come_from_the_environment(config: Path) -> None:
    secrets = list(_secret_values(yaml.safe_load(config.read_text(encoding="utf-8"))))
    assert secrets
    for where, value in secrets:
        assert isinstance(value, str) and VARIABLE.fullmatch(value), (
            f"{_rel(config)}: {where} is not ${{NAME}}"
        )


@pytest.mark.parametrize("config", CONFIGS, ids=_rel)
def test_example_scheduler_provides_every_variable_of_its_config(config: Path) -> None:
    """Each ${NAME} of the config is set by a file beside it (env file, workflow, CronJob)."""
    others = [p for p in config.parent.rglob("*") if p.is_file() and p != config]
    text = "\n".join(p.read_text(encoding="utf-8") for p in others)
    for name in _variables(config):
        assert re.search(rf"\b{name}\b", text), f"nothing beside {_rel(config)} provides {name}"


@pytest.mark.parametrize("path", [p for p in EXAMPLE_FILES if p.suffix in (".yaml", ".yml")], ids=_rel)
def test_example_yaml_files_parse(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


# --- the cron wrapper ----------------------------------------------------------------------

WRAPPER = EXAMPLES / "cron" / "scimsync-cron"


def _cron(tmp_path: Path, *command: str, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "SCIMSYNC_LOG": str(tmp_path / "runs.log"), "TMPDIR": str(tmp_path)}
    if env_file is not None:
        env["SCIMSYNC_ENV_FILE"] = str(env_file)
    return subprocess.run(
        ["sh", str(WRAPPER), *command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cron_wrapper_is_silent_on_success_and_logs_the_run(tmp_path: Path) -> None:
    done = _cron(tmp_path, "sh", "-c", "echo 'Plan: 0 to create'; exit 0")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    log = (tmp_path / "runs.log").read_text(encoding="utf-8")
    assert "exit 0" in log and "Plan: 0 to create" in log
    assert [p.name for p in tmp_path.iterdir()] == ["runs.log"]  # its temporary file is gone


@pytest.mark.parametrize(("code", "meaning"), [(1, "error"), (3, "safety guard"), (143, "interrupted")])
def test_cron_wrapper_prints_what_needs_a_person(tmp_path: Path, code: int, meaning: str) -> None:
    run = _cron(tmp_path, "sh", "-c", f"echo 'out line'; echo 'err line' >&2; exit {code}")
    assert run.returncode == code
    assert run.stdout.startswith(f"scimsync-cron: exit {code}: ")
    assert meaning in run.stdout.splitlines()[0]
    assert "out line" in run.stdout and "err line" in run.stdout  # the whole output, for the mail


def test_cron_example_runs_with_its_env_file(tmp_path: Path) -> None:
    """The crontab's pieces together: wrapper + env file + config, through the real CLI."""
    config = EXAMPLES / "cron" / "scimsync.yaml"
    validate = [sys.executable, "-m", "scimsync", "-c", str(config), "validate"]
    ok = _cron(tmp_path, *validate, env_file=EXAMPLES / "cron" / "scimsync.env")
    assert (ok.returncode, ok.stdout) == (0, "")
    partial = tmp_path / "partial.env"
    partial.write_text("OKTA_API_TOKEN=x\nJIRA_PAT=y\n", encoding="utf-8")
    failed = _cron(tmp_path, *validate, env_file=partial)
    assert failed.returncode == 1
    assert "exit 1" in failed.stdout and "CONFLUENCE_PASSWORD" in failed.stdout


# --- every command shown exists ------------------------------------------------------------

# `scimsync` as a command word: after a space, quote, bracket, `=` or `(` (ExecStart=, $(...)),
# optionally with a path ending in bin/ (.venv/bin/scimsync); not a user name after `-u`
# (crontab -u scimsync, sudo -u scimsync), not part of a longer name (scimsync-cron, .yaml).
COMMAND = re.compile(r"""(?:^|(?<=[\s"'`(=\[,]))(?<!-u )(?:[^\s"'`=]*bin/)?scimsync(?=$|[\s"'`);\]])""")
SHELL_END = re.compile(r"\s(?:\|\|?|&&|\d?>>?|<)|;|\)|`")
COMMENT = re.compile(r"(?:^|\s)#")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*|\$.*")  # FILE, N, KIND, $VAR, "${VAR}"
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Shown:
    """A command as shown in a file: where, the text, and its arguments after `scimsync`."""

    where: str
    text: str
    args: tuple[str, ...]


def commands_in_code(line: str) -> Iterator[str]:
    """The text after each `scimsync` command word of a line of code, up to a shell operator."""
    for match in COMMAND.finditer(line):
        rest = line[match.end() :]
        opener = line[match.start() - 1] if match.start() else ""
        if opener in ('"', "'"):
            rest = rest.split(opener, 1)[0]
        yield SHELL_END.split(rest, maxsplit=1)[0]


def commands_in_prose(line: str) -> Iterator[str]:
    """The commands in a line's `inline code` (with markdown tables' `\\|` unescaped)."""
    for span in INLINE.findall(line):
        yield from commands_in_code(span.replace("\\|", "|"))


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it is code), shell continuation lines joined."""
    markdown = path.suffix == ".md"
    in_fence, pending = False, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if markdown and FENCE.match(line):
            in_fence = not in_fence
            continue
        is_code = in_fence or not markdown
        if is_code and line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield number, pending + line, is_code
        pending = ""


def commands_in_file(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, command text) of every command shown in a file."""
    for number, line, is_code in _lines(path):
        found: Iterator[str]
        if is_code:
            code, *comment = COMMENT.split(line, maxsplit=1)
            found = itertools.chain(commands_in_code(code), commands_in_prose("".join(comment)))
        else:
            found = commands_in_prose(line)
        for text in found:
            yield number, text


def expand(text: str) -> list[tuple[str, ...]]:
    """Split a shown command into argument lists: `[x]` is optional text, `a|b` alternatives."""
    tokens: list[list[str]] = []
    for token in shlex.split(text):
        if token in ("$@", "$*") or token.endswith("[@]}"):
            break  # the rest comes from a variable: check what is shown
        token = token.strip("[]")
        if token and token not in ("...", "…"):
            tokens.append(token.split("|") if "|" in token and not token.startswith("-") else [token])
    return [tuple(choice) for choice in itertools.product(*tokens)]


def _yaml_lists(node: Any) -> Iterator[list[Any]]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _yaml_lists(value)
    elif isinstance(node, list):
        yield node
        for value in node:
            yield from _yaml_lists(value)


def commands_in_yaml(path: Path) -> Iterator[tuple[str, ...]]:
    """Commands in exec form: a YAML list whose first item is scimsync (a CronJob's `command:`)."""
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        for items in _yaml_lists(document):
            if items and isinstance(items[0], str) and Path(items[0]).name == "scimsync":
                yield tuple(str(item) for item in items[1:])


def _command(path: list[str]) -> click.Command:
    command: click.Command = cli
    for name in path:
        if isinstance(command, click.Group) and name in command.commands:
            command = command.commands[name]
    return command


def _option(command: click.Command, name: str) -> click.Option | None:
    return next(
        (p for p in command.params if isinstance(p, click.Option) and name in (*p.opts, *p.secondary_opts)),
        None,
    )


def readme_table_options() -> Iterator[Shown]:
    """Each option in a row of the README's command table (`--format table|json|markdown`,
    `-y/--auto-approve`, `--target`) parses on that row's command; each global option parses
    before a command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for number, line in enumerate(readme.splitlines(), 1):
        spans = [s.replace("\\|", "|") for s in INLINE.findall(line)]
        if line.startswith("| `scimsync ") and spans:
            yield from _options_of(f"README.md:{number}", spans[0].split()[1:], spans[1:], [])
    for paragraph in readme.split("\n\n"):
        if paragraph.startswith("Global options:"):
            yield from _options_of("README.md (global options)", [], INLINE.findall(paragraph), ["validate"])


def _options_of(where: str, command: list[str], spans: list[str], suffix: list[str]) -> Iterator[Shown]:
    command = [word.strip("[]") for word in command]  # `apply [PLANFILE]`
    for span in spans:
        if not span.startswith("-"):
            continue
        first, *value = span.split()
        for name in first.split("/"):  # -y/--auto-approve
            option = _option(_command(command), name)
            if option is not None and not option.is_flag and not option.count and not value:
                value = ["VALUE"]  # `--target` named without its value
            for args in expand(shlex.join([*command, name, *value, *suffix])):
                yield Shown(where, span, args)


def shown_commands() -> list[Shown]:
    """Every command shown in README.md, docs/*.md and examples/**."""
    shown: list[Shown] = []
    for path in [ROOT / "README.md", *DOCS, *EXAMPLE_FILES]:
        for number, text in commands_in_file(path):
            # a bare `scimsync` (a user name, the completion script) is no command to check
            shown.extend(Shown(f"{_rel(path)}:{number}", text.strip(), a) for a in expand(text) if a)
        if path.suffix in (".yaml", ".yml"):
            shown.extend(Shown(_rel(path), " ".join(a), a) for a in commands_in_yaml(path))
    shown.extend(readme_table_options())
    return shown


SHOWN = shown_commands()


def _walk(command: click.Command) -> Iterator[click.Command]:
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _walk(sub)


def with_samples(args: tuple[str, ...]) -> list[str]:
    """Replace placeholder values (`--allow-deactivations N`, `--op KIND`) by valid ones."""
    out: list[str] = []
    path: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        out.append(token)
        i += 1
        command = _command(path)
        if isinstance(command, click.Group) and token in command.commands:
            path.append(token)
            continue
        option = _option(command, token)
        if option is None or option.is_flag or option.count or i >= len(args):
            continue
        value = args[i]
        if PLACEHOLDER.fullmatch(value):
            if isinstance(option.type, click.Choice):
                value = str(option.type.choices[0])
            elif isinstance(option.type, click.types.IntParamType | click.types.FloatParamType):
                value = "1"
        out.append(value)
        i += 1
    return out


@pytest.fixture(scope="module")
def recorder() -> Iterator[list[str]]:
    """Every command's callback replaced by a recorder: the parse is click's, nothing runs."""
    invoked: list[str] = []

    def record(*args: Any, **kwargs: Any) -> None:
        invoked.append(click.get_current_context().info_name or "")

    with pytest.MonkeyPatch.context() as mp:
        for command in _walk(cli):
            mp.setattr(command, "callback", record)
            for param in command.params:
                if isinstance(param.type, click.Path):  # a file named in the docs need not exist here
                    mp.setattr(param.type, "exists", False)
        yield invoked


def _run(args: list[str], recorder: list[str]) -> tuple[int, str]:
    recorder.clear()
    result = CliRunner().invoke(cli, args, prog_name="scimsync")
    return result.exit_code, result.output


def test_commands_are_found_where_they_are_shown() -> None:
    where = {s.where.split(":")[0] for s in SHOWN}
    assert {
        "README.md",
        "docs/scheduling.md",
        "examples/cron/crontab",
        "examples/systemd/scimsync.service",
    } <= where
    assert {
        "examples/github-actions/.github/workflows/scimsync.yml",
        "examples/gitlab-ci/.gitlab-ci.yml",
    } <= where
    assert any("apply" in s.args for s in SHOWN if s.where == "examples/kubernetes/cronjob.yaml")


@pytest.mark.parametrize("shown", SHOWN, ids=[f"{s.where} {shlex.join(s.args)}" for s in SHOWN])
def test_every_command_shown_exists(shown: Shown, recorder: list[str]) -> None:
    args = with_samples(shown.args)
    code, output = _run(args, recorder)
    assert code == 0, f"{shown.where}: `scimsync {shown.text}` does not parse:\n{output}"
    if not {"--help", "-h", "--version"} & set(args):
        assert len(recorder) >= 2, f"{shown.where}: `scimsync {shown.text}` runs no command"


@pytest.mark.parametrize(
    "line",
    [
        "scimsync plna",
        "  .venv/bin/scimsync plan --no-such-option --out plan.json",
        "run: scimsync plan --format yaml >> $GITHUB_STEP_SUMMARY",
        "scimsync apply --allow-deactivations many",
        "ExecStart=/opt/scimsync/bin/scimsync audit check",
        "scimsync -c",
        "scimsync --no-color",
    ],
)
def test_the_check_fails_on_a_wrong_command(line: str, recorder: list[str]) -> None:
    (text,) = commands_in_code(line)
    (args,) = expand(text)
    code, _ = _run(with_samples(args), recorder)
    assert code == 1


def test_the_check_reads_placeholders_and_alternatives() -> None:
    (text,) = commands_in_prose("see `scimsync plan [--op KIND] --format table\\|json` here")
    assert expand(text) == [
        ("plan", "--op", "KIND", "--format", "table"),
        ("plan", "--op", "KIND", "--format", "json"),
    ]
    assert with_samples(("plan", "--op", "KIND", "--allow-deactivations", "N"))[2] != "KIND"
    assert with_samples(("plan", "--allow-deactivations", "N"))[2] == "1"
    assert (
        list(commands_in_code("crontab -u scimsync crontab; scimsync-cron x; /etc/scimsync/scimsync.yaml"))
        == []
    )


# --- README and docs stand alone -----------------------------------------------------------

FOREIGN = ("SPEC", "../shared", "reference §")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS, EXAMPLES / "README.md"], ids=_rel)
def test_readme_and_docs_cite_only_what_a_user_has(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for foreign in FOREIGN:
        assert foreign not in text, f"{_rel(doc)} mentions {foreign!r}"
    assert not re.search(r"\bissue #?\d+", text, re.I), f"{_rel(doc)} cites an issue number"
    for target in LINK.findall(text):
        if "://" not in target:
            assert (doc.parent / target).exists(), f"{_rel(doc)} links to {target}, which does not exist"
