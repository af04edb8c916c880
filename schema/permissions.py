"""Moved to :mod:`resolvers.permissions` (issue 19: resolvers never import schema).

Kept only for ``schema/content.py`` and ``resolvers/content.py`` until content is split by section; the
import contract in pyproject.toml lists that one exception. Import from ``resolvers.permissions``.
"""

from resolvers.permissions import (
    STAFF_ROLES,
    Forbidden,
    Unauthenticated,
    is_staff,
    require_role,
    require_viewer,
)

__all__ = ["STAFF_ROLES", "Forbidden", "Unauthenticated", "is_staff", "require_role", "require_viewer"]
