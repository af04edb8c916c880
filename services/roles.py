"""The role matrix (issue 17, K3): who reads whose data. README "Roles" is the same matrix in prose.

- CUSTOMER reads their own objects: linked accounts and what hangs off them, their appeals, applications,
  payments, sessions and profile.
- OPERATOR and ADMIN read every customer's objects (they answer appeals and applications and need the
  customer's contact data for it).
- ANALYST reads **no** per-customer object and no personal value: the visibility rules below give an
  analyst what they give a customer with no linked account (nothing), and the personal fields of
  ``schema.policy`` refuse them. Analysts read reference data and aggregates.
- BILLING (a service role for the billing exchange endpoint) has no GraphQL access at all.

Every visibility rule of the services and resolvers asks :func:`reads_customer_data` instead of testing
"is staff": being staff is not a reason to read a customer's data.
"""

from __future__ import annotations

from typing import Final

STAFF_ROLES: Final = frozenset({"OPERATOR", "ANALYST", "ADMIN"})
"""Roles of the utility's employees (GraphiQL in production, staff-only introspection)."""

CUSTOMER_DATA_ROLES: Final = frozenset({"OPERATOR", "ADMIN"})
"""Roles that read every customer's objects and personal data (the queues need them)."""

PERSONAL_DATA_ROLES: Final = frozenset({"CUSTOMER", "OPERATOR", "ADMIN"})
"""Roles that may read a personal field at all (a customer: only on their own objects, which the
visibility rules already ensure). Every other role — ANALYST — gets FORBIDDEN on personal fields."""

ANALYTICS_ROLES: Final = frozenset({"ANALYST", "ADMIN"})
"""Roles that read aggregates (queue sizes, the ``analytics`` field)."""


def reads_customer_data(role: str | None) -> bool:
    """True when ``role`` sees every customer's objects (OPERATOR, ADMIN); a customer sees only their own."""
    return role in CUSTOMER_DATA_ROLES


def reads_personal_data(role: str | None) -> bool:
    """True when ``role`` may read personal fields (of the objects it can see at all)."""
    return role is None or role in PERSONAL_DATA_ROLES
