"""Who may call what: one guard per kind of caller, raising top-level GraphQL errors with codes."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.types import Info

from app.context import Context, Viewer
from services.roles import STAFF_ROLES  # the role matrix (issue 17)


class Unauthenticated(GraphQLError):
    """The operation needs a logged-in user."""

    def __init__(self) -> None:
        super().__init__("Authentication required", extensions={"code": "UNAUTHENTICATED"})


class Forbidden(GraphQLError):
    """The caller is logged in but may not do this."""

    def __init__(self) -> None:
        super().__init__("Forbidden", extensions={"code": "FORBIDDEN"})


def viewer(info: Info[Context, Any]) -> Viewer | None:
    """The caller, or None when anonymous."""
    return info.context.viewer


def require_viewer(info: Info[Context, Any]) -> Viewer:
    """The caller; anonymous callers get an UNAUTHENTICATED error."""
    found = info.context.viewer
    if found is None:
        raise Unauthenticated()
    return found


def require_role(info: Info[Context, Any], *roles: str) -> Viewer:
    """The caller, who must hold one of ``roles`` (else FORBIDDEN)."""
    found = require_viewer(info)
    if found.role not in roles:
        raise Forbidden()
    return found


def is_staff(found: Viewer | None) -> bool:
    """True for OPERATOR, ANALYST and ADMIN."""
    return found is not None and found.role in STAFF_ROLES
