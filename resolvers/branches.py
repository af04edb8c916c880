"""Branches (филиалы), suppliers and services: loaders and thin resolvers."""

from __future__ import annotations

from models.branches import Branch, Service, Supplier
from resolvers.context import Info
from resolvers.loaders import ReferenceById
from services import branches


class BranchById(ReferenceById):
    """Branches by id, as plain rows (:data:`BranchRow`), kept between requests per version."""

    model = Branch


class SupplierById(ReferenceById):
    """Suppliers by id, as plain rows (:data:`SupplierRow`), kept between requests per version."""

    model = Supplier


class ServiceById(ReferenceById):
    """Services by id, as plain rows (:data:`ServiceRow`), kept between requests per version."""

    model = Service


SupplierRow = SupplierById.row_class()
"""Reference rows every dashboard shows, read only: plain rows (issue 21; ``is_type_of`` takes them)."""
ServiceRow = ServiceById.row_class()
BranchRow = BranchById.row_class()


async def list_branches(info: Info) -> list[Branch]:
    """All branches (public)."""
    async with info.context.session() as session:
        return await branches.list_branches(session)


async def branches_by_ids(info: Info, ids: list[int]) -> list[Branch | None]:
    """Branches by id (public reference data, visible to anybody)."""
    return await info.context.loader(BranchById).load_many(ids)


async def suppliers_by_ids(info: Info, ids: list[int]) -> list[Supplier | None]:
    """Suppliers by id (public: their requisites are printed on every receipt)."""
    return await info.context.loader(SupplierById).load_many(ids)
