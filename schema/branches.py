"""Branches (филиалы) of the supplier and the suppliers that bill services."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import relay

from models import branches as models
from resolvers import branches as resolvers
from resolvers.context import Info
from schema.node import as_node, backed_by


@strawberry.type(
    description="The days of each month when meter readings are accepted (E3), in the branch's time zone."
)
class ReadingWindow:
    """A monthly window, e.g. from the 15th to the 25th."""

    start_day: int = strawberry.field(description="First day of the month when readings are accepted.")
    end_day: int = strawberry.field(
        description="Last day of the month when readings are accepted (inclusive)."
    )


@strawberry.type(
    description="A branch (филиал) of the supplier: each account belongs to one; chosen when linking."
)
class Branch(relay.Node):
    """A regional branch, e.g. «Скопинское отделение». Backed by ``models.branches.Branch`` rows."""

    is_type_of = backed_by(models.Branch, resolvers.BranchRow)  # plain rows from BranchById (issue 21)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name shown to customers, e.g. «Скопинское отделение».")
    code: str = strawberry.field(description="Stable short code of the branch.")
    time_zone: str = strawberry.field(description="IANA time zone of the branch, e.g. `Europe/Moscow`.")
    address: str | None = strawberry.field(description="Postal address of the branch office.")
    phone: str | None = strawberry.field(description="Contact phone of the branch.")

    @strawberry.field(description="Monthly window for submitting meter readings.")
    def reading_window(self, root: strawberry.Parent[models.Branch]) -> ReadingWindow:
        return ReadingWindow(start_day=root.reading_window_start_day, end_day=root.reading_window_end_day)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Branch | None]:
        """Branches are public reference data: anybody may fetch them by id."""
        return as_node(cls, await resolvers.branches_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type(description="A supplier (поставщик) that bills services and receives payments.")
class Supplier(relay.Node):
    """A legal entity with the bank requisites printed on receipts and in payment QR codes."""

    is_type_of = backed_by(models.Supplier, resolvers.SupplierRow)  # plain rows from SupplierById (issue 21)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Full name, e.g. ПАО «РЭСК».")
    inn: str = strawberry.field(description="Taxpayer number (ИНН).")
    kpp: str | None = strawberry.field(description="Tax registration reason code (КПП).")
    bank_name: str = strawberry.field(description="Bank of the settlement account.")
    bic: str = strawberry.field(description="Bank identifier code (БИК).")
    correspondent_account: str = strawberry.field(description="Bank's correspondent account (к/с).")
    settlement_account: str = strawberry.field(description="Supplier's settlement account (р/с).")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Supplier | None]:
        """Suppliers are public (their requisites are printed on every receipt)."""
        return as_node(cls, await resolvers.suppliers_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type
class BranchQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(
        description="Every branch, in the order customers see them when linking an account (B1)."
    )
    async def branches(self, info: Info) -> list[Branch]:
        return await resolvers.list_branches(info)  # type: ignore[return-value]
