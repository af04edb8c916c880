"""I1 the online shop: categories, goods and services, orders that become applications."""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import MISSING
from typing import Annotated

import strawberry
from strawberry import relay

from models import content as models
from resolvers.content import shop as shop_resolvers
from resolvers.context import Info
from schema import rules
from schema.content.common import decode_id, decode_optional_id, file_url, int_ids, payload_id
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by
from services.content import shop as shop_service

ShopErrorCode = error_code_enum(
    "ShopErrorCode",
    "Why a shop mutation (I2) failed: the `code` of `ShopError`.",
    "services.content.shop",
    "services.content.common",
    "services.accounts",
    "services.codes",
    "services.identity.errors",
    "services.notifications",
)


@strawberry.interface(
    description=(
        "A problem with a shop mutation (I2), "
        "reported in its payload's `userErrors`. "
        "`code` (`ShopErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class ShopError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=ShopErrorCode,
        description="Stable machine-readable code, one of `ShopErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A `ShopError` with no data beyond code, message and field.")
class ShopInputError(ShopError):
    """The default implementation of :class:`ShopError`."""


SHOP_ERRORS = error_domain(ShopError, ShopErrorCode, ShopInputError)
user_error = SHOP_ERRORS.one
user_errors = SHOP_ERRORS.many


@strawberry.type(description="A category of the online shop (I1), e.g. «Приборы учёта».")
class ShopCategory(relay.Node):
    """Backed by ``models.content.ShopCategory`` rows."""

    is_type_of = backed_by(models.ShopCategory)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name shown to customers.")
    position: int = strawberry.field(description="Display order (ascending).")

    @strawberry.field(description="Goods and services on sale in this category, in display order.")
    async def items(self, info: Info, root: strawberry.Parent[models.ShopCategory]) -> list[ShopItem]:
        return await shop_resolvers.items_of_category(info, root.id)  # type: ignore[return-value]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ShopCategory | None]:
        """Categories are public."""
        return as_node(cls, await shop_resolvers.shop_categories_by_ids(info, int_ids(node_ids)))


@strawberry.type(description="Goods or a service sold by the supplier (I1).")
class ShopItem(relay.Node):
    """Backed by ``models.content.ShopItem`` rows."""

    is_type_of = backed_by(models.ShopItem)

    id: relay.NodeID[int]
    name: str = strawberry.field(description="Name of the goods or service.")
    description: str | None = strawberry.field(description="What it is, in a few sentences.")
    price: decimal.Decimal | None = strawberry.field(
        description="Price in RUB with kopecks; null when the price is given on request."
    )
    url: str | None = strawberry.field(description="Page of the item in the supplier's web shop, if any.")
    active: bool = strawberry.field(description="Whether it is on sale (customers only ever see true).")
    position: int = strawberry.field(description="Display order inside its category (ascending).")

    @strawberry.field(description="The category it belongs to.")
    async def category(self, info: Info, root: strawberry.Parent[models.ShopItem]) -> ShopCategory:
        return await shop_resolvers.category(info, root.category_id)  # type: ignore[return-value]

    @strawberry.field(description="A short-lived signed URL of the item's picture; null when it has none.")
    def image_url(self, info: Info, root: strawberry.Parent[models.ShopItem]) -> str | None:
        return file_url(info, root.image_file_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ShopItem | None]:
        """Items on sale are public; the ADMIN also sees the ones taken off sale."""
        return as_node(cls, await shop_resolvers.shop_items_by_ids(info, int_ids(node_ids)))


@strawberry.input(
    description="I1: ask to buy goods or a service; it reaches the operators as an application."
)
class OrderShopItemInput:
    """Input of orderShopItem."""

    item_id: strawberry.ID = strawberry.field(description="Global ID of the ShopItem.")
    account_id: strawberry.ID = strawberry.field(description="Global ID of one of the caller's accounts.")
    quantity: int = strawberry.field(default=1, description="How many, 1–100.")
    contact_phone: str | None = rules.field(
        "Phone to call about the order; default: the caller's phone.", rules.PHONE
    )
    comment: str | None = rules.field("Anything the operator should know.", rules.COMMENT)


@strawberry.type(description="Result of orderShopItem.")
class OrderShopItemPayload:
    """The application the order became."""

    application_id: strawberry.ID | None = strawberry.field(
        description="Global ID of the application (kind FREE_FORM) the operators will process."
    )
    user_errors: list[ShopError] = strawberry.field(description="Why nothing was ordered, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a shop category.")
class SaveShopCategoryInput:
    """Input of saveShopCategory."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Category to change; null: new.")
    name: str = rules.field("Name.", rules.Rule(max_length=255), default=MISSING)
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveShopCategory.")
class SaveShopCategoryPayload:
    """The category."""

    category: ShopCategory | None = strawberry.field(description="The saved category.")
    user_errors: list[ShopError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.input(description="ADMIN: create (no id) or change a shop item.")
class SaveShopItemInput:
    """Input of saveShopItem."""

    id: strawberry.ID | None = strawberry.field(default=None, description="Item to change; null: new.")
    category_id: strawberry.ID = strawberry.field(description="Global ID of its ShopCategory.")
    name: str = rules.field("Name.", rules.Rule(max_length=255), default=MISSING)
    description: str | None = rules.field("Description.", rules.LONG_TEXT)
    price: decimal.Decimal | None = strawberry.field(
        default=None, description="Price in RUB; null: on request."
    )
    url: str | None = strawberry.field(default=None, description="Page in the web shop.")
    image_file_id: int | None = strawberry.field(
        default=None, description="Id of an already stored file (picture); null: none."
    )
    active: bool = strawberry.field(default=True, description="On sale; false takes it off sale.")
    position: int = strawberry.field(default=0, description="Display order.")


@strawberry.type(description="Result of saveShopItem.")
class SaveShopItemPayload:
    """The item."""

    item: ShopItem | None = strawberry.field(description="The saved item.")
    user_errors: list[ShopError] = strawberry.field(description="Why nothing was saved, if so.")


@strawberry.type
class ShopQueries:
    """Queries of I1 (shop); merged into Query."""

    @strawberry.field(description="I1: shop categories, each with its goods and services on sale (public).")
    async def shop_categories(self, info: Info) -> list[ShopCategory]:
        return await shop_resolvers.shop_categories(info)  # type: ignore[return-value]

    @strawberry.field(description="I1: goods and services on sale, optionally of one category (public).")
    async def shop_items(
        self,
        info: Info,
        category_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this ShopCategory.")
        ] = None,
        include_inactive: Annotated[
            bool, strawberry.argument(description="ADMIN only: also items taken off sale.")
        ] = False,
    ) -> list[ShopItem]:
        return await shop_resolvers.shop_items(  # type: ignore[return-value]
            info, decode_optional_id(category_id, "ShopCategory"), include_inactive
        )


@strawberry.type
class ShopMutations:
    """Mutations of I1 (shop); merged into Mutation."""

    @strawberry.mutation(description="I1: order goods or a service; operators get it as an application.")
    async def order_shop_item(
        self,
        info: Info,
        input: Annotated[
            OrderShopItemInput,
            strawberry.argument(
                description="The item, quantity, account and contact details of the order (I1)."
            ),
        ],
    ) -> OrderShopItemPayload:
        order = shop_service.OrderRequest(
            item_id=decode_id(input.item_id, "ShopItem"),
            account_id=decode_id(input.account_id, "Account"),
            quantity=input.quantity,
            comment=input.comment,
            contact_phone=input.contact_phone,
        )
        result, errors = await shop_resolvers.order_shop_item(info, order)
        return OrderShopItemPayload(
            application_id=payload_id(result, "Application"), user_errors=user_errors(errors)
        )

    @strawberry.mutation(description="ADMIN: create or change a shop category.")
    async def save_shop_category(
        self,
        info: Info,
        input: Annotated[
            SaveShopCategoryInput,
            strawberry.argument(description="ADMIN: the category to create (no id) or rename (with its id)."),
        ],
    ) -> SaveShopCategoryPayload:
        form = shop_service.ShopCategoryForm(
            id=decode_optional_id(input.id, "ShopCategory"), name=input.name, position=input.position
        )
        result, errors = await shop_resolvers.save_shop_category(info, form)
        return SaveShopCategoryPayload(category=result, user_errors=user_errors(errors))

    @strawberry.mutation(description="ADMIN: create or change a shop item (active=false takes it off sale).")
    async def save_shop_item(
        self,
        info: Info,
        input: Annotated[
            SaveShopItemInput,
            strawberry.argument(description="ADMIN: the item to create (no id) or change (with its id)."),
        ],
    ) -> SaveShopItemPayload:
        form = shop_service.ShopItemForm(
            id=decode_optional_id(input.id, "ShopItem"),
            category_id=decode_id(input.category_id, "ShopCategory"),
            name=input.name,
            description=input.description,
            price=input.price,
            url=input.url,
            image_file_id=input.image_file_id,
            active=input.active,
            position=input.position,
        )
        result, errors = await shop_resolvers.save_shop_item(info, form)
        return SaveShopItemPayload(item=result, user_errors=user_errors(errors))
