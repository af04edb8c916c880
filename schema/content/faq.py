"""I2 frequently asked questions, searched in Russian full text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING
from typing import Annotated

import strawberry
from strawberry import relay

from models import content as models
from resolvers.content import faq as faq_resolvers
from schema import rules
from schema.content.common import decode_id, decode_optional_id, int_ids
from schema.errors import UserError, user_errors
from schema.node import as_node, backed_by
from services.content import faq as faq_service


@strawberry.type(description="A frequently asked question and its answer (I2).")
class FaqEntry(relay.Node):
    """Backed by ``models.content.FaqEntry`` rows."""

    is_type_of = backed_by(models.FaqEntry)

    id: relay.NodeID[int]
    category: str = strawberry.field(description="Topic, e.g. «Оплата».")
    question: str = strawberry.field(description="The question.")
    answer: str = strawberry.field(description="The answer.")
    position: int = strawberry.field(description="Display order (ascending).")

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False
    ) -> list[FaqEntry | None]:
        """The FAQ is public."""
        return as_node(cls, await faq_resolvers.faq_entries_by_ids(info, int_ids(node_ids)))


@strawberry.input(description="ADMIN: create (no id) or change a FAQ entry.")
class SaveFaqEntryInput:
    """Input of saveFaqEntry."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Entry to change; null: new.")
    category: str = rules.field("Topic.", rules.Rule(max_length=128), default=MISSING)
    question: str = rules.field("Question.", rules.LONG_TEXT, default=MISSING)
    answer: str = rules.field("Answer.", rules.LONG_TEXT, default=MISSING)
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveFaqEntry.")
class SaveFaqEntryPayload:
    """The entry."""

    entry: FaqEntry | None = strawberry.field(description="The saved entry.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="ADMIN: remove a FAQ entry.")
class DeleteFaqEntryInput:
    """Input of deleteFaqEntry."""

    id: strawberry.ID = strawberry.field(description="Global ID of the entry.")


@strawberry.type(description="Result of deleteFaqEntry.")
class DeleteFaqEntryPayload:
    """Whether it was deleted."""

    deleted: bool = strawberry.field(description="True when the entry is gone.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was deleted, if so.")


@strawberry.type
class FaqQueries:
    """Queries of I2 (faq); merged into Query."""

    @strawberry.field(
        description=(
            "I2: questions and answers, in display order; `search` is a Russian full-text search "
            "(word forms match: «оплатить» finds «оплата»), best matches first (public)."
        )
    )
    async def faq_entries(
        self,
        info: strawberry.Info,
        search: Annotated[str | None, strawberry.argument(description="Words to look for.")] = None,
        category: Annotated[str | None, strawberry.argument(description="Only this category.")] = None,
    ) -> list[FaqEntry]:
        return await faq_resolvers.faq_entries(info, search, category)  # type: ignore[return-value]

    @strawberry.field(description="I2: FAQ categories, in display order (public).")
    async def faq_categories(self, info: strawberry.Info) -> list[str]:
        return await faq_resolvers.faq_categories(info)


@strawberry.type
class FaqMutations:
    """Mutations of I2 (faq); merged into Mutation."""

    @strawberry.mutation(description="ADMIN: create or change a FAQ entry.")
    async def save_faq_entry(
        self,
        info: strawberry.Info,
        input: Annotated[
            SaveFaqEntryInput,
            strawberry.argument(
                description="ADMIN: the FAQ entry to create (no id) or change (with its id)."
            ),
        ],
    ) -> SaveFaqEntryPayload:
        form = faq_service.FaqForm(
            id=decode_optional_id(input.id, "FaqEntry"),
            category=input.category,
            question=input.question,
            answer=input.answer,
            position=input.position,
        )
        result, errors = await faq_resolvers.save_faq_entry(info, form)
        return SaveFaqEntryPayload(entry=result, user_errors=user_errors(errors))  # type: ignore[arg-type]

    @strawberry.mutation(description="ADMIN: remove a FAQ entry.")
    async def delete_faq_entry(
        self,
        info: strawberry.Info,
        input: Annotated[
            DeleteFaqEntryInput, strawberry.argument(description="ADMIN: the FAQ entry to delete.")
        ],
    ) -> DeleteFaqEntryPayload:
        errors = await faq_resolvers.delete_faq_entry(info, decode_id(input.id, "FaqEntry"))
        return DeleteFaqEntryPayload(deleted=not errors, user_errors=user_errors(errors))
