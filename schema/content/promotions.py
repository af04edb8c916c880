"""I4 promotions (акции) with a validity period, everywhere or in a branch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import MISSING
from typing import Annotated

import strawberry
from strawberry import relay

from models import content as models
from resolvers import branches as branch_resolvers
from resolvers.content import promotions as promotions_resolvers
from schema import rules
from schema.branches import Branch
from schema.content.common import decode_optional_id, file_url, int_ids
from schema.errors import UserError, user_errors
from schema.node import as_node, backed_by
from services.content import promotions as promotions_service


@strawberry.type(description="A promotion (акция) with a validity period (I4).")
class Promotion(relay.Node):
    """Backed by ``models.content.Promotion`` rows."""

    is_type_of = backed_by(models.Promotion)

    id: relay.NodeID[int]
    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    body: str = rules.field("Text.", rules.LONG_TEXT, default=MISSING)
    url: str | None = strawberry.field(description="«Подробнее» link.")
    starts_on: dt.date = strawberry.field(description="First day it is valid.")
    ends_on: dt.date | None = strawberry.field(description="Last day it is valid (inclusive); null: no end.")

    @strawberry.field(description="The branch it is limited to; null: everywhere.")
    async def branch(self, info: strawberry.Info, root: strawberry.Parent[models.Promotion]) -> Branch | None:
        if root.branch_id is None:
            return None
        return (await branch_resolvers.branches_by_ids(info, [root.branch_id]))[0]  # type: ignore[return-value]

    @strawberry.field(description="A short-lived signed URL of its picture; null when it has none.")
    def image_url(self, info: strawberry.Info, root: strawberry.Parent[models.Promotion]) -> str | None:
        return file_url(info, root.image_file_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Promotion | None]:
        """Promotions are public."""
        return as_node(cls, await promotions_resolvers.promotions_by_ids(info, int_ids(node_ids)))


@strawberry.type(description="The «Акции» section (I4): inactive when no promotion is current.")
class PromotionSection:
    """Current promotions plus the section's state."""

    promotions: list[Promotion] = strawberry.field(description="Promotions valid today, newest first.")

    @strawberry.field(description="False when there is no current promotion: the section is shown inactive.")
    def active(self) -> bool:
        return bool(self.promotions)


@strawberry.input(description="ADMIN: create (no id) or change a promotion.")
class SavePromotionInput:
    """Input of savePromotion."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Promotion to change; null: new.")
    title: str = rules.field("Title.", rules.TITLE, default=MISSING)
    body: str = rules.field("Text.", rules.LONG_TEXT, default=MISSING)
    starts_on: dt.date = strawberry.field(description="First valid day.")
    ends_on: dt.date | None = strawberry.field(default=None, description="Last valid day (inclusive).")
    branch_id: strawberry.ID | None = strawberry.field(
        default=None, description="Global ID of the Branch it is limited to; null: everywhere."
    )
    url: str | None = strawberry.field(default=None, description="«Подробнее» link.")
    image_file_id: int | None = strawberry.field(default=None, description="Id of an already stored picture.")


@strawberry.type(description="Result of savePromotion.")
class SavePromotionPayload:
    """The promotion."""

    promotion: Promotion | None = strawberry.field(description="The saved promotion.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.type
class PromotionsQueries:
    """Queries of I4 (promotions); merged into Query."""

    @strawberry.field(
        description=(
            "I4: promotions valid today (everywhere, or in a branch of one of the caller's accounts) and "
            "whether the section is active (public)."
        )
    )
    async def promotion_section(self, info: strawberry.Info) -> PromotionSection:
        return PromotionSection(promotions=await promotions_resolvers.current_promotions(info))  # type: ignore[arg-type]

    @strawberry.field(description="ADMIN: every promotion, past and future included.")
    async def all_promotions(self, info: strawberry.Info) -> list[Promotion]:
        return await promotions_resolvers.all_promotions(info)  # type: ignore[return-value]


@strawberry.type
class PromotionsMutations:
    """Mutations of I4 (promotions); merged into Mutation."""

    @strawberry.mutation(description="ADMIN: create or change a promotion (a new current one is announced).")
    async def save_promotion(
        self,
        info: strawberry.Info,
        input: Annotated[
            SavePromotionInput,
            strawberry.argument(
                description="ADMIN: the promotion to create (no id) or change (with its id)."
            ),
        ],
    ) -> SavePromotionPayload:
        form = promotions_service.PromotionForm(
            id=decode_optional_id(input.id, "Promotion"),
            title=input.title,
            body=input.body,
            starts_on=input.starts_on,
            ends_on=input.ends_on,
            branch_id=decode_optional_id(input.branch_id, "Branch"),
            url=input.url,
            image_file_id=input.image_file_id,
        )
        result, errors = await promotions_resolvers.save_promotion(info, form)
        return SavePromotionPayload(promotion=result, user_errors=user_errors(errors))  # type: ignore[arg-type]
