"""Branches, suppliers and services: reference data every other domain points at."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.branches import Branch


async def list_branches(session: AsyncSession) -> list[Branch]:
    """Every branch in the order the company lists them (the B1 choice list)."""
    return list((await session.execute(select(Branch).order_by(Branch.position, Branch.name))).scalars())
