"""Notifications (I6), their settings (J6), push devices, and the live stream (K2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Iterable
from dataclasses import MISSING
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from models import identity as identity_models
from models import notifications as models
from resolvers import notifications as resolvers
from resolvers.context import Info
from resolvers.permissions import require_viewer
from schema import rules
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by, parse_global_id
from schema.pagination import Connection, encode_cursor
from services import notifications as service

NotificationErrorCode = error_code_enum(
    "NotificationErrorCode",
    "Why a notification mutation (I1–I3) failed: the `code` of `NotificationError`.",
    "services.notifications",
)


@strawberry.interface(
    description=(
        "A problem with a notification mutation (I1–I3), "
        "reported in its payload's `userErrors`. "
        "`code` (`NotificationErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class NotificationError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=NotificationErrorCode,
        description="Stable machine-readable code, one of `NotificationErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="A `NotificationError` with no data beyond code, message and field.")
class NotificationInputError(NotificationError):
    """The default implementation of :class:`NotificationError`."""


NOTIFICATION_ERRORS = error_domain(NotificationError, NotificationErrorCode, NotificationInputError)
user_error = NOTIFICATION_ERRORS.one
user_errors = NOTIFICATION_ERRORS.many


@strawberry.enum(description="What a notification is about; settings are chosen per category (J6).")
class NotificationCategory(Enum):
    """Topics of notifications."""

    PAYMENTS = strawberry.enum_value("PAYMENTS", description="Payments and autopay.")
    READINGS = strawberry.enum_value(
        "READINGS", description="Meter readings: accepted, flagged, window open."
    )
    REQUESTS = strawberry.enum_value("REQUESTS", description="Appeals and applications: status and answers.")
    BILLING = strawberry.enum_value("BILLING", description="Charges and new receipts.")
    SERVICE_NEWS = strawberry.enum_value("SERVICE_NEWS", description="Service news, surveys.")
    MARKETING = strawberry.enum_value("MARKETING", description="Promotions and advertising (opt-in).")


@strawberry.enum(description="Where notifications are delivered.")
class NotificationChannel(Enum):
    """Delivery channels."""

    IN_APP = strawberry.enum_value("IN_APP", description="In the cabinet (history and live stream).")
    EMAIL = strawberry.enum_value("EMAIL", description="A copy to the confirmed e-mail address.")
    SMS = strawberry.enum_value("SMS", description="A copy by SMS to the phone.")
    PUSH = strawberry.enum_value(
        "PUSH", description="A push message to the user's registered mobile devices."
    )


@strawberry.enum(description="Push service of a mobile device.")
class PushPlatform(Enum):
    """Push platforms."""

    IOS = strawberry.enum_value("IOS", description="Apple Push Notification service.")
    ANDROID = strawberry.enum_value("ANDROID", description="Firebase Cloud Messaging.")
    HUAWEI = strawberry.enum_value("HUAWEI", description="Huawei Push Kit.")
    WEB = strawberry.enum_value("WEB", description="Web Push.")


DEEP_LINK_TYPES: dict[str, str] = {
    "accountId": "Account",
    "appealId": "Appeal",
    "applicationId": "Application",
    "appointmentId": "Appointment",
    "branchId": "Branch",
    "officeId": "Office",
    "paymentId": "Payment",
    "promotionId": "Promotion",
    "shopItemId": "ShopItem",
    "submissionId": "ReadingSubmission",
    "surveyId": "Survey",
}
"""The node type behind each id key that producers put in a notification's ``data`` (raw database ids)."""


def deep_links(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` as clients need it: raw database ids replaced by global IDs."""
    if not data:
        return data
    return {
        key: relay.to_base64(DEEP_LINK_TYPES[key], value)
        if key in DEEP_LINK_TYPES and isinstance(value, int)
        else value
        for key, value in data.items()
    }


@strawberry.type(
    description="A message to the user: payment status, accepted readings, an answer to an appeal…"
)
class Notification(relay.Node):
    """One notification (I6). Backed by ``models.notifications.Notification`` rows."""

    is_type_of = backed_by(models.Notification)

    id: relay.NodeID[int]
    title: str = strawberry.field(description="Short title.")
    body: str = strawberry.field(description="Text of the notification.")
    created_at: dt.datetime = strawberry.field(description="When it was created.")
    read_at: dt.datetime | None = strawberry.field(description="When the user read it; null while unread.")

    @strawberry.field(
        description=(
            'What to open for it (deep links), e.g. `{"paymentId": "UGF5bWVudDo1", "status": "SUCCEEDED"}`: '
            "every `…Id` is the global ID of that object (usable with `node`)."
        )
    )
    def data(self, root: strawberry.Parent[models.Notification]) -> JSON | None:
        return cast("JSON | None", deep_links(root.data))

    @strawberry.field(description="What it is about.")
    def category(self, root: strawberry.Parent[models.Notification]) -> NotificationCategory:
        return NotificationCategory(root.category.value)

    @strawberry.field(description="Whether the user has read it.")
    def read(self, root: strawberry.Parent[models.Notification]) -> bool:
        return root.read_at is not None

    @strawberry.field(description="Global ID of the account it concerns, if any.")
    def account_id(self, root: strawberry.Parent[models.Notification]) -> strawberry.ID | None:
        return (
            strawberry.ID(str(relay.GlobalID("Account", str(root.account_id)))) if root.account_id else None
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Notification | None]:
        """Only the owner sees a notification."""
        return as_node(
            cls, await resolvers.notifications_by_ids(info, [int(node_id) for node_id in node_ids])
        )


@strawberry.type(description="A notification delivered by the `notifications` subscription, with its cursor.")
class NotificationEvent:
    """One item of the live stream."""

    cursor: str = strawberry.field(
        description="Pass it as `after` when reconnecting to get only what came later."
    )
    notification: Notification = strawberry.field(description="The notification.")


@strawberry.type(description="Whether one category goes to one channel (J6).")
class NotificationPreference:
    """One cell of the settings matrix."""

    category: NotificationCategory = strawberry.field(description="Topic.")
    channel: NotificationChannel = strawberry.field(description="Delivery channel.")
    enabled: bool = strawberry.field(description="Whether notifications of the category go to the channel.")

    @classmethod
    def from_domain(cls, preference: service.Preference) -> NotificationPreference:
        """Map a service value."""
        return cls(
            category=NotificationCategory(preference.category.value),
            channel=NotificationChannel(preference.channel.value),
            enabled=preference.enabled,
        )


@strawberry.input(description="Mark one notification read.")
class MarkNotificationReadInput:
    """Input of markNotificationRead."""

    id: strawberry.ID = strawberry.field(description="Global ID of the notification.")


@strawberry.type(description="Result of markNotificationRead.")
class MarkNotificationReadPayload:
    """The notification and the new unread count."""

    notification: Notification | None = strawberry.field(description="The notification, now read.")
    unread_count: int = strawberry.field(description="Unread notifications left.")
    user_errors: list[NotificationError] = strawberry.field(description="Why nothing changed, if so.")


@strawberry.type(description="Result of markAllNotificationsRead.")
class MarkAllNotificationsReadPayload:
    """How many notifications changed."""

    changed: int = strawberry.field(description="Notifications that were unread and are read now.")
    user_errors: list[NotificationError] = strawberry.field(
        description="Always empty; kept for the payload convention."
    )


@strawberry.input(description="One setting to change.")
class NotificationPreferenceInput:
    """A category × channel choice."""

    category: NotificationCategory = strawberry.field(description="Topic.")
    channel: NotificationChannel = strawberry.field(description="Delivery channel.")
    enabled: bool = strawberry.field(
        description="On or off. Turning MARKETING on records the user's consent."
    )


@strawberry.input(description="Change notification and advertising subscriptions (J6).")
class UpdateNotificationSettingsInput:
    """Input of updateNotificationSettings."""

    settings: list[NotificationPreferenceInput] = strawberry.field(description="The choices to apply.")


@strawberry.type(description="Result of updateNotificationSettings.")
class UpdateNotificationSettingsPayload:
    """The whole matrix after the change."""

    settings: list[NotificationPreference] = strawberry.field(description="Every category × channel now.")
    user_errors: list[NotificationError] = strawberry.field(
        description="Always empty; kept for the payload convention."
    )


@strawberry.input(description="Register this mobile device for push notifications.")
class RegisterPushDeviceInput:
    """Input of registerPushDevice."""

    platform: PushPlatform = strawberry.field(description="Push service of the device.")
    token: str = rules.field(
        "The device token issued by the push service.", rules.Rule(max_length=512), default=MISSING
    )


@strawberry.input(description="Stop push notifications to a device (e.g. on logout there).")
class UnregisterPushDeviceInput:
    """Input of unregisterPushDevice."""

    token: str = rules.field("The device token.", rules.Rule(max_length=512), default=MISSING)


@strawberry.type(description="Result of registerPushDevice / unregisterPushDevice.")
class PushDevicePayload:
    """Whether the device is registered now."""

    registered: bool = strawberry.field(description="Whether the token is registered to the user now.")
    user_errors: list[NotificationError] = strawberry.field(description="Why the token was refused, if so.")


@strawberry.type
class NotificationQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(description="The caller's notifications, newest first (I6).")
    async def notifications(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="Page size, 1–100.")] = 20,
        after: Annotated[str | None, strawberry.argument(description="Cursor of the last item seen.")] = None,
        unread_only: Annotated[bool, strawberry.argument(description="Only unread ones.")] = False,
        category: Annotated[
            NotificationCategory | None, strawberry.argument(description="Only one category.")
        ] = None,
    ) -> Connection[Notification]:
        found = await resolvers.page(
            info,
            first=first,
            after=after,
            unread_only=unread_only,
            category=models.NotificationCategory(category.name) if category else None,
        )
        return Connection[Notification].from_page(found, lambda row: row)

    @strawberry.field(description="How many of the caller's notifications are unread (the badge).")
    async def unread_notification_count(self, info: Info) -> int:
        return await resolvers.unread_count(info)

    @strawberry.field(
        description="Notification and advertising subscriptions: every category × channel (J6)."
    )
    async def notification_settings(self, info: Info) -> list[NotificationPreference]:
        return [NotificationPreference.from_domain(p) for p in await resolvers.settings(info)]


@strawberry.type
class NotificationMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(description="Mark one notification read.")
    async def mark_notification_read(
        self,
        info: Info,
        input: Annotated[
            MarkNotificationReadInput, strawberry.argument(description="The notification to mark as read.")
        ],
    ) -> MarkNotificationReadPayload:
        notification_id = int(parse_global_id(input.id, expected_type="Notification").node_id)
        row, errors = await resolvers.mark_read(info, notification_id)
        return MarkNotificationReadPayload(
            notification=row,  # type: ignore[arg-type]
            unread_count=await resolvers.unread_count(info),
            user_errors=user_errors(errors),
        )

    @strawberry.mutation(description="Mark every notification read.")
    async def mark_all_notifications_read(self, info: Info) -> MarkAllNotificationsReadPayload:
        return MarkAllNotificationsReadPayload(changed=await resolvers.mark_all_read(info), user_errors=[])

    @strawberry.mutation(description="Change notification and advertising subscriptions (J6).")
    async def update_notification_settings(
        self,
        info: Info,
        input: Annotated[
            UpdateNotificationSettingsInput,
            strawberry.argument(description="Which categories and channels the user wants notifications in."),
        ],
    ) -> UpdateNotificationSettingsPayload:
        changes = [
            service.Preference(
                models.NotificationCategory(item.category.name),
                models.NotificationChannel(item.channel.name),
                item.enabled,
            )
            for item in input.settings
        ]
        result = await resolvers.update_settings(info, changes)
        return UpdateNotificationSettingsPayload(
            settings=[NotificationPreference.from_domain(p) for p in result], user_errors=[]
        )

    @strawberry.mutation(description="Register this mobile device for push notifications.")
    async def register_push_device(
        self,
        info: Info,
        input: Annotated[
            RegisterPushDeviceInput, strawberry.argument(description="The device's push token and platform.")
        ],
    ) -> PushDevicePayload:
        errors = await resolvers.register_push_device(
            info, identity_models.PushPlatform(input.platform.name), input.token
        )
        return PushDevicePayload(registered=not errors, user_errors=user_errors(errors))

    @strawberry.mutation(description="Stop push notifications to a device.")
    async def unregister_push_device(
        self,
        info: Info,
        input: Annotated[
            UnregisterPushDeviceInput, strawberry.argument(description="The push token to forget.")
        ],
    ) -> PushDevicePayload:
        await resolvers.unregister_push_device(info, input.token)
        return PushDevicePayload(registered=False, user_errors=[])


def _stream_event(_user_id: int, row: Any) -> NotificationEvent:
    return NotificationEvent(cursor=encode_cursor((row.id,)), notification=row)


STREAM_EVENTS = resolvers.ByIdentity()
"""Stream items by notification row (``resolvers.notifications.ByIdentity``)."""


@strawberry.type
class NotificationSubscriptions:
    """Subscriptions of this module (merged into Subscription)."""

    @strawberry.subscription(
        description=(
            "The caller's notifications as they happen. Pass the `cursor` of the last event you received as "
            "`after` when reconnecting: first everything you missed is replayed, then the stream goes live, "
            "with no gap and no duplicate. Needs a token in `connection_init`."
        )
    )
    async def notifications(
        self,
        info: Info,
        after: Annotated[
            str | None, strawberry.argument(description="Cursor of the last event received.")
        ] = None,
    ) -> AsyncGenerator[NotificationEvent, None]:
        require_viewer(info)
        user_id = info.context.viewer.user_id  # type: ignore[union-attr]  # require_viewer checked it
        async for row in resolvers.live(info, after):
            # one event object per row: the sockets of the user given the same row share one execution
            yield STREAM_EVENTS.get(row, user_id, _stream_event)
