"""Confluence simulator: reading users (reference §2.3, §2.6)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from scimsync.sim.confluence_common import Ctx, group_json, json_response, page, user_json, user_page

# §2.6: the doc table says 100, its text 200; the smaller one, so a client that omits
# the limit and assumes 200 finds out here.
USER_LIST_DEFAULT = 100
MEMBER_OF_DEFAULT = 200  # §2.3
ACTIVE_LIST_DEFAULT = 200  # [U] not documented; the cap


def get_user(ctx: Ctx) -> Response:
    """GET /user?username=|key=[&expand=status] (§2.3)."""
    return json_response(user_json(ctx, ctx.query_user()))


def current_user(ctx: Ctx) -> Response:
    """GET /user/current: the caller."""
    assert ctx.caller is not None
    return json_response(user_json(ctx, ctx.caller))


def member_of(ctx: Ctx) -> Response:
    """GET /user/memberof?username=|key=&start=&limit=: the user's groups, paged (§2.3)."""
    user = ctx.query_user()
    start, limit = ctx.page_args(MEMBER_OF_DEFAULT)
    return page(ctx, ctx.directory.groups_of(user), start, limit, group_json)


def list_users(ctx: Ctx) -> Response:
    """GET /user/list: every registered user, disabled and unlicensed ones too (8.4+, §2.6)."""
    start, limit = ctx.page_args(USER_LIST_DEFAULT)
    return user_page(ctx, ctx.directory.users_by_creation(), start, limit)


def list_active_users(ctx: Ctx) -> Response:
    """GET /admin/users/list/active: licensed active users only (9.3+, §2.6)."""
    start, limit = ctx.page_args(ACTIVE_LIST_DEFAULT)
    licensed = [u for u in ctx.directory.users_by_creation() if ctx.directory.is_licensed(u)]
    return user_page(ctx, licensed, start, limit)
