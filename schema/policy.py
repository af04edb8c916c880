"""The role matrix applied to the schema, in one place (issue 17, K3).

Two rules, each kept here and applied to the built schema by :func:`apply_policy`:

**Per type** — :data:`PER_CUSTOMER_TYPES` are the Node types that describe one customer (their account,
appeal, payment, session…). ``node``/``nodes`` give them only to roles that read customer data
(:func:`services.roles.reads_customer_data`) or to a customer (whose own objects the type's
``resolve_nodes`` then filters); an ANALYST gets null, as for an id that does not exist. The lists and
fields that lead to such objects use the same visibility functions (``services.accounts.visible_account_ids``,
``services.appeals.may_see_request``, ``services.payments.payments_of``), which give an analyst nothing.

**Per field** — :data:`PERSONAL` classifies every field that carries personal data (names, phones, e-mails,
addresses, account numbers, bank details, free text, files and download links, device data). Their
resolvers are wrapped so that a role without :func:`services.roles.reads_personal_data` (ANALYST) gets a
FORBIDDEN error instead of a value, whichever path led to the object. :data:`NOT_PERSONAL` lists the
text fields that are not personal. Every ``String``/``JSON`` field of an object type must be in exactly one
of the two: ``tests/test_roles.py`` fails on an unclassified one, so a new field has to be classified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from graphql import GraphQLObjectType, GraphQLSchema, default_field_resolver

from resolvers.permissions import Forbidden
from services.roles import reads_customer_data, reads_personal_data

PER_CUSTOMER_TYPES: Final = frozenset(
    {
        "Account",
        "Appeal",
        "Application",
        "Appointment",
        "CallbackRequest",
        "DeviceKey",
        "Document",
        "LoginSession",
        "Meter",
        "MeterReading",
        "Notification",
        "Payment",
        "ReadingSubmission",
        "SavedCard",
        "User",
    }
)
"""Node types whose every object belongs to one customer (or one user): not for ANALYST via ``node``."""

# Kinds of personal data (the values of PERSONAL).
NAME, PHONE, EMAIL, ADDRESS, ACCOUNT_NUMBER, BANK = "name", "phone", "email", "address", "account", "bank"
FREE_TEXT, FILE, LINK, DEVICE = "free text", "file", "link", "device"

PERSONAL: Final[Mapping[str, Mapping[str, str]]] = {
    "Account": {
        "number": ACCOUNT_NUMBER,
        "address": ADDRESS,
        "ownerFullName": NAME,
        "displayName": FREE_TEXT,
        "receiptEmail": EMAIL,
    },
    "AccountRequisites": {"ownerFullName": NAME},
    "Appeal": {"text": FREE_TEXT, "answer": FREE_TEXT, "fullName": NAME, "phone": PHONE, "email": EMAIL},
    "AppealDraft": {"fullName": NAME, "phone": PHONE, "email": EMAIL},
    "Application": {
        "text": FREE_TEXT,
        "answer": FREE_TEXT,
        "fullName": NAME,
        "phone": PHONE,
        "email": EMAIL,
        "fields": BANK,  # refund bank details, owners' names, addresses, account numbers
    },
    "ApplicationDraft": {"fullName": NAME, "phone": PHONE, "email": EMAIL},
    "Appointment": {"topic": FREE_TEXT},
    "AssistantAnswer": {"text": FREE_TEXT, "facts": FREE_TEXT},  # may quote the account's data
    "AttachedFile": {"filename": FILE, "sha256": FILE},
    "CallbackRequest": {"phone": PHONE, "topic": FREE_TEXT},
    "DeviceKey": {"name": DEVICE, "credentialId": DEVICE},
    "Document": {"title": FILE},
    "FileDownload": {"url": LINK},
    "LoginSession": {"deviceName": DEVICE, "userAgent": DEVICE, "clientIp": DEVICE},
    "Meter": {"serial": DEVICE, "location": FREE_TEXT, "sealNumber": DEVICE},
    "Notification": {"title": FREE_TEXT, "body": FREE_TEXT, "data": FREE_TEXT},
    "Payment": {
        "receiptEmail": EMAIL,
        "confirmationUrl": LINK,
        "sbpPayload": LINK,
        "sbpQrImageUrl": LINK,
    },
    "QrLoginRequest": {"clientIp": DEVICE, "userAgent": DEVICE},
    "ReadingsForm": {"accountNumber": ACCOUNT_NUMBER, "address": ADDRESS},
    "SavedCard": {"cardLast4": BANK, "cardBrand": BANK},
    "TimelineEvent": {"text": FREE_TEXT},
    "User": {
        "phone": PHONE,
        "email": EMAIL,
        "lastName": NAME,
        "firstName": NAME,
        "middleName": NAME,
        "fullName": NAME,
    },
    "VideoCallLink": {"url": LINK},
}
"""Personal fields by GraphQL type: field name → kind of personal data. Refused to ANALYST."""

_ERROR_FIELDS = frozenset({"code", "message", "field"})

NOT_PERSONAL: Final[Mapping[str, frozenset[str]]] = {
    **{
        name: _ERROR_FIELDS
        for name in (
            "AmountTooSmallError",
            "ReadingBelowPreviousError",
            "ReadingDoesNotFitMeterError",
            "ReadingWindowClosedError",
            "ReadingZonesMissingError",
            "RetryLaterError",
            "TooManyLinkAttemptsError",
            "WrongCodeError",
            # each domain's default error type (schema.errors: XxxInputError implements XxxError)
            *(
                f"{domain}InputError"
                for domain in (
                    "Reading",
                    "Account",
                    "Identity",
                    "Payment",
                    "Appeal",
                    "Notification",
                    "Shop",
                    "Faq",
                    "Survey",
                    "Promotion",
                    "Office",
                )
            ),
        )
    },
    **{
        name: frozenset({"cursor"})
        for name in ("AccountEdge", "AppealEdge", "ApplicationEdge", "DocumentEdge", "NotificationEdge")
    },
    "NotificationEvent": frozenset({"cursor"}),
    "PageInfo": frozenset({"startCursor", "endCursor"}),
    # Fixed texts of the system and reference data
    "AccountBalance": frozenset({"label", "displayAmount"}),
    "AccountMeters": frozenset({"message"}),
    "AccountService": frozenset({"zoneScheme"}),
    "Appeal": frozenset({"topic", "topicName"}),
    "AppealTopic": frozenset({"code", "name"}),
    "Application": frozenset({"kindName"}),
    "ApplicationKindInfo": frozenset({"name", "requiredFields"}),
    "AssistantFaqAnswer": frozenset({"question", "answer"}),
    "AttachedFile": frozenset({"contentType"}),
    "Branch": frozenset({"name", "code", "timeZone", "address", "phone"}),  # the utility's branch office
    "Contacts": frozenset({"hotlinePhone", "videoCallUrl", "webConsultantUrl"}),
    "CreateAppealPayload": frozenset({"message"}),
    "FaqEntry": frozenset({"category", "question", "answer"}),
    "LoginService": frozenset({"displayName"}),
    "Meter": frozenset({"model"}),
    "MeterService": frozenset({"code", "name", "unit"}),
    "Office": frozenset({"name", "address", "phone", "services"}),
    "OpeningInterval": frozenset({"opens", "closes"}),
    "Payment": frozenset({"currency", "failureReason"}),
    "PaymentStatusEvent": frozenset({"reason"}),
    "PaymentStatusStep": frozenset({"reason"}),
    "Promotion": frozenset({"title", "body", "url", "imageUrl"}),
    "Query": frozenset({"faqCategories"}),
    "ReadingWindowStatus": frozenset({"timeZone", "message"}),
    "ReadingsForAllAccounts": frozenset({"message"}),
    "Service": frozenset({"code", "name", "unit"}),
    "ShopCategory": frozenset({"name"}),
    "ShopItem": frozenset({"name", "description", "url", "imageUrl"}),
    "SubmitApplicationPayload": frozenset({"message"}),
    "Supplier": frozenset(  # a company's registration and bank details, published on every receipt
        {"name", "inn", "kpp", "bankName", "bic", "correspondentAccount", "settlementAccount"}
    ),
    "Survey": frozenset({"title", "description"}),
    "SurveyOption": frozenset({"text"}),
    "SurveyQuestion": frozenset({"text"}),
    "Tariff": frozenset({"consumerGroup"}),
    "TariffDocument": frozenset({"title", "number"}),
    "UnlinkAccountPayload": frozenset({"notice"}),
    "VideoCallLink": frozenset({"branchName"}),
    # Analytics (issue 17): aggregates over at least MIN_SUBJECTS accounts; a key is a dimension value
    # (branch/supplier/service id, period, topic/kind/status code) and its reference-data name, never an
    # account number or a customer's text; the export link is the analyst's own signed link to such CSV.
    "AnalyticsKey": frozenset({"value", "label"}),
    "AnalyticsExport": frozenset({"url"}),
    # The caller's own credentials and login handshakes: only ever returned to the caller themself
    "AuthTokens": frozenset({"accessToken", "refreshToken"}),
    "CodeSent": frozenset({"destination"}),  # masked, the caller's own phone or e-mail
    "DeviceChallengePayload": frozenset({"challenge"}),
    "QrLoginStarted": frozenset({"webSecret", "qrPayload", "qrSvg"}),
    "StartVkLoginPayload": frozenset({"authorizationUrl", "state"}),
}
"""Text fields that are not personal, by GraphQL type (reference data, fixed texts, the caller's own
credentials)."""

GUARDED = "_kabinet_personal"
"""Attribute set on a wrapped resolver (``app.execution`` then resolves the field the generic way)."""


def personal_kind(type_name: str, field_name: str) -> str | None:
    """The kind of personal data ``type_name.field_name`` carries, or None."""
    return PERSONAL.get(type_name, {}).get(field_name)


def node_allowed(type_name: str, role: str | None) -> bool:
    """May ``role`` read objects of ``type_name`` through ``node``/``nodes``?"""
    if type_name not in PER_CUSTOMER_TYPES:
        return True
    return role == "CUSTOMER" or reads_customer_data(role)


def _guard(resolve: Callable[..., Any]) -> Callable[..., Any]:
    """``resolve``, refusing roles that may not read personal data (its result may be an awaitable)."""

    def guarded(source: Any, info: Any, **args: Any) -> Any:
        viewer = getattr(info.context, "viewer", None)
        if viewer is not None and not reads_personal_data(viewer.role):
            raise Forbidden()
        return resolve(source, info, **args)

    setattr(guarded, GUARDED, True)
    guarded.__wrapped__ = resolve  # type: ignore[attr-defined]
    return guarded


def apply_policy(schema: GraphQLSchema) -> None:
    """Wrap the resolver of every :data:`PERSONAL` field of ``schema`` with the role check."""
    for type_name, fields in PERSONAL.items():
        type_ = schema.type_map.get(type_name)
        if not isinstance(type_, GraphQLObjectType):
            continue
        for field_name in fields:
            field = type_.fields.get(field_name)
            if field is None or getattr(field.resolve, GUARDED, False):
                continue
            field.resolve = _guard(field.resolve or default_field_resolver)
