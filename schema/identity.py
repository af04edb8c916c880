"""Users and roles (A, J)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import strawberry
from strawberry import relay

from models import identity as models
from resolvers import identity as resolvers
from schema.node import as_node, backed_by


@strawberry.enum(description="What a user may do.")
class Role(Enum):
    """Roles of Kabinet users."""

    CUSTOMER = strawberry.enum_value(
        "CUSTOMER", description="A customer: sees and manages their linked accounts."
    )
    OPERATOR = strawberry.enum_value(
        "OPERATOR", description="Company operator: works with appeals and applications."
    )
    ANALYST = strawberry.enum_value(
        "ANALYST", description="Analyst: reads aggregated data, explores in GraphiQL."
    )
    ADMIN = strawberry.enum_value("ADMIN", description="Administrator: manages content and staff.")


@strawberry.type(description="A user of the cabinet: a customer or a member of staff.")
class User(relay.Node):
    """The person behind a login. Backed by ``models.identity.User`` rows."""

    is_type_of = backed_by(models.User)

    id: relay.NodeID[int]
    phone: str = strawberry.field(description="Phone number in E.164, e.g. `+71111111111`.")
    email: str | None = strawberry.field(
        description="E-mail address, confirmed or not (see `emailConfirmed`)."
    )
    last_name: str = strawberry.field(description="Last name (фамилия).")
    first_name: str = strawberry.field(description="First name (имя).")
    middle_name: str | None = strawberry.field(description="Middle name (отчество); null until set.")
    show_hints: bool = strawberry.field(description="Whether the front end shows hints (J9).")

    @strawberry.field(
        description="Whether the e-mail address is confirmed (A2); only a confirmed one logs in."
    )
    def email_confirmed(self, root: strawberry.Parent[models.User]) -> bool:
        return root.email_confirmed_at is not None

    @strawberry.field(description="Full name: last, first and middle name.")
    def full_name(self, root: strawberry.Parent[models.User]) -> str:
        return " ".join(part for part in (root.last_name, root.first_name, root.middle_name) if part)

    @strawberry.field(description="The user's role.")
    def role(self, root: strawberry.Parent[models.User]) -> Role:
        return Role(root.role.value)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        """A customer may fetch only themself; operators and admins anybody."""
        return as_node(cls, await resolvers.users_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type
class IdentityQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(description="The logged-in user; null when the request carries no access token.")
    async def me(self, info: strawberry.Info) -> User | None:
        return await resolvers.me(info)  # type: ignore[return-value]
