"""Confluence simulator: the admin user endpoints — create, update, disable, enable, delete (§2.4, §2.5)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from scimsync.sim.confluence_common import ConfluenceError, Ctx, empty_response, json_response
from scimsync.sim.confluence_directory import DEFAULT_GROUP, ConfluenceUser
from scimsync.sim.confluence_tasks import LongTask
from scimsync.sim.jira_users import EMAIL  # one address syntax for every simulator

CREATE_FIELDS = ("userName", "fullName", "email", "password", "notifyViaEmail")  # §2.4
UPDATE_FIELDS = ("email", "fullName")  # §2.5: only these two
USERNAME_FORBIDDEN = "\\,+<>'\""  # §2.4
MAX_LENGTH = 255  # [U] the Crowd column size; §2.4 names no length


def read_only_message(user: ConfluenceUser, action: str) -> str:
    """Return the refusal of a write to a user of a read-only directory (§2.10)."""
    return f"User '{user.name}' belongs to a read-only directory and cannot be {action}."


def refuse_read_only(user: ConfluenceUser, action: str) -> None:
    """Answer 403 for any write to a read-only (LDAP) user.

    §2.10 says such users cannot be changed over REST [U]; the status is not documented:
    403, as a permission refused by the directory (the strict reading, never a silent no-op).
    """
    if user.read_only:
        raise ConfluenceError(403, read_only_message(user, action))


def _strings(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, str | None]:
    """Return the string fields of the body; 400 when one has another JSON type."""
    found: dict[str, str | None] = {}
    for name in names:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise ConfluenceError(400, f"Field '{name}' must be a string.")
        found[name] = value
    return found


def _check_username(name: str | None) -> list[str]:
    if name is None or not name.strip():
        return ["userName must not be blank."]
    errors = []
    if name != name.lower():
        errors.append("userName must not contain upper-case letters.")
    if any(c.isspace() for c in name):
        errors.append("userName must not contain whitespace.")
    if any(c in USERNAME_FORBIDDEN for c in name):
        errors.append("userName must not contain any of \\ , + < > ' \".")
    if name == "anonymous":
        errors.append("userName must not be 'anonymous'.")
    if len(name) > MAX_LENGTH:
        errors.append(f"userName must not exceed {MAX_LENGTH} characters.")
    return errors


def _check_full_name(name: str | None) -> list[str]:
    if name is None or not name.strip():
        return ["fullName must not be blank."]
    errors = []
    if "<" in name or ">" in name:
        errors.append("fullName must not contain '<' or '>'.")
    if name.strip().lower() == "anonymous":  # [U] compared without case
        errors.append("fullName must not be 'anonymous'.")
    if len(name) > MAX_LENGTH:
        errors.append(f"fullName must not exceed {MAX_LENGTH} characters.")
    return errors


def _check_email(email: str | None) -> list[str]:
    if email is None or not email.strip():
        return ["email must not be blank."]
    if len(email) > MAX_LENGTH or not EMAIL.match(email):
        return ["email must be a valid email address."]
    return []


def _check_password(password: str | None, notify: bool) -> list[str]:
    """§2.4: a password iff no notification email; a blank password is no password."""
    if notify and password is not None:
        return ["password must not be given when notifyViaEmail is true."]
    if not notify and (password is None or not password.strip()):
        return ["password is required when notifyViaEmail is false."]
    return []


def _invalid(errors: list[str]) -> None:
    if errors:
        raise ConfluenceError(400, " ".join(errors), errors=errors)


def create_user(ctx: Ctx) -> Response:
    """POST /admin/user: validate strictly, 409 for a taken name, 402 without a seat (8.4+, §2.4)."""
    body = ctx.json_body(CREATE_FIELDS)
    fields = _strings(body, CREATE_FIELDS[:4])
    notify = body.get("notifyViaEmail")
    if notify is not None and not isinstance(notify, bool):
        raise ConfluenceError(400, "Field 'notifyViaEmail' must be true or false.")
    name, full_name, email = fields["userName"], fields["fullName"], fields["email"]
    # [U] an omitted notifyViaEmail is false (a Java boolean), so a password is required.
    _invalid(
        _check_username(name)
        + _check_full_name(full_name)
        + _check_email(email)
        + _check_password(fields["password"], bool(notify))
    )
    assert name is not None and full_name is not None and email is not None
    if ctx.directory.find_user(name) is not None:  # names compare case-insensitively (§2.10)
        raise ConfluenceError(409, f"A user with the username '{name}' already exists.")
    seats = ctx.seats
    if seats is not None and ctx.directory.licensed_count() >= seats:
        raise ConfluenceError(402, f"No licence seats left: all {seats} are in use.")
    user = ctx.directory.create_user(name, email, full_name)
    if fields["password"]:
        ctx.directory.passwords[user.key] = fields["password"]
    # [U] a new user joins the default user group, as one created in the admin UI does.
    group = ctx.directory.find_group(DEFAULT_GROUP)
    if group is not None:
        group.members.add(user.key)
    return json_response({"userKey": user.key}, 201)


def update_user(ctx: Ctx) -> Response:
    """PUT /admin/user/{username} {email, fullName}: 204 (10.0+, §2.5).

    [U] the reference lists the two fields without saying whether both are needed;
    the strict reading requires both, so a client always sends the complete pair.
    """
    body = ctx.json_body(UPDATE_FIELDS)
    user = ctx.named_user(ctx.params["username"])
    refuse_read_only(user, "updated")
    missing = [name for name in UPDATE_FIELDS if name not in body]
    if missing:
        raise ConfluenceError(400, f"Missing field(s): {', '.join(missing)}.", errors=missing)
    fields = _strings(body, UPDATE_FIELDS)
    _invalid(_check_full_name(fields["fullName"]) + _check_email(fields["email"]))
    user.email, user.display_name = fields["email"] or user.email, fields["fullName"] or user.display_name
    return empty_response(204)


def _set_active(ctx: Ctx, active: bool) -> Response:
    """Disable or enable: idempotent, 204 (§2.5, §6)."""
    user = ctx.named_user(ctx.params["username"])
    refuse_read_only(user, "enabled" if active else "disabled")
    if not active and user is ctx.caller:  # [U] never lock out the calling administrator
        raise ConfluenceError(400, "You cannot disable yourself.")
    user.active = active
    return empty_response(204)


def disable_user(ctx: Ctx) -> Response:
    """PUT /admin/user/{username}/disable (8.2+, §2.5)."""
    return _set_active(ctx, False)


def enable_user(ctx: Ctx) -> Response:
    """PUT /admin/user/{username}/enable (8.2+, §2.5)."""
    return _set_active(ctx, True)


def set_password(ctx: Ctx) -> Response:
    """POST /admin/user/{username}/password {"password"}: 204, 400 when blank (8.4+, §2.5)."""
    body = ctx.json_body(("password",))
    user = ctx.named_user(ctx.params["username"])
    refuse_read_only(user, "given a new password")
    password = _strings(body, ("password",))["password"]
    if password is None or not password.strip():
        raise ConfluenceError(400, "password must not be blank.", errors=["password must not be blank."])
    ctx.directory.passwords[user.key] = password
    return empty_response(204)


def delete_user(ctx: Ctx) -> Response:
    """DELETE /admin/user/{username}: 202 and a long task that deletes the user (8.2+, §2.5)."""
    user = ctx.named_user(ctx.params["username"])
    refuse_read_only(user, "deleted")
    if user is ctx.caller:  # [U] as for disable
        raise ConfluenceError(400, "You cannot delete yourself.")
    return submission(ctx, ctx.tasks.submit(ctx.directory, user))


def submission(ctx: Ctx, task: LongTask) -> Response:
    """Return the 202 LongTaskSubmission of an asynchronous delete (§2.5)."""
    status = f"{ctx.context}/rest/api/longtask/{task.id}"
    return json_response({"id": task.id, "links": {"status": status}}, 202)


def get_task(ctx: Ctx) -> Response:
    """GET /longtask/{id}: the task status; each poll advances the task one step (§2.5)."""
    task = ctx.tasks.tasks.get(ctx.params["task_id"])
    if task is None:
        raise ConfluenceError(404, f"No long running task found with id: {ctx.params['task_id']}")
    ctx.tasks.poll(ctx.directory, task)
    return json_response(ctx.tasks.status(task))
