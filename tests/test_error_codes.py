"""Issue 19: error codes are enums, one per domain, each value described, none missing.

A domain's payloads can return the ``DomainError`` of any service module its resolvers (or its schema module
directly) import, transitively: the import graph (grimp, the engine of ``lint-imports``) over-approximates
what a mutation can raise, so a code that is not in its domain's enum fails here, not as a 500 in production.
"""

from __future__ import annotations

import importlib

import grimp
import pytest
from graphql import GraphQLEnumType

from schema.errors import domain_errors_in
from services.errors import DomainError

DOMAINS = {
    "readings": "ReadingErrorCode",
    "accounts": "AccountErrorCode",
    "identity": "IdentityErrorCode",
    "payments": "PaymentErrorCode",
    "appeals": "AppealErrorCode",
    "notifications": "NotificationErrorCode",
    "content.shop": "ShopErrorCode",
    "content.faq": "FaqErrorCode",
    "content.surveys": "SurveyErrorCode",
    "content.promotions": "PromotionErrorCode",
    "content.offices": "OfficeErrorCode",
}

GRAPH = grimp.build_graph("app", "schema", "resolvers", "services", "models")


def reachable_errors(domain: str) -> list[type[DomainError]]:
    """Every DomainError class a domain's mutations can raise: defined in its resolvers module, in the
    input rules, or in a service module reachable from its resolvers or imported by its schema module."""
    direct = GRAPH.find_modules_directly_imported_by(f"schema.{domain}")
    starts = {f"resolvers.{domain}"} | {name for name in direct if name.startswith("services")}
    modules = set(starts) | {"schema.rules", "services.errors"}
    for start in starts:
        modules |= {name for name in GRAPH.find_upstream_modules(start) if name.startswith("services")}
    return [cls for name in sorted(modules) for cls in domain_errors_in(importlib.import_module(name))]


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_19_every_code_a_domain_can_raise_is_in_its_enum(domain: str) -> None:
    codes = {member.value for member in getattr(importlib.import_module(f"schema.{domain}"), DOMAINS[domain])}
    missing = sorted(
        f"{cls.__module__}.{cls.__name__} ({cls.code})"
        for cls in reachable_errors(domain)
        if cls.code not in codes
    )
    assert missing == []


def test_19_every_error_code_enum_value_is_described_and_equals_the_old_string() -> None:
    from schema.schema import build_schema

    schema = build_schema()._schema
    enums = {name: kind for name, kind in schema.type_map.items() if name.endswith("ErrorCode")}
    assert set(enums) == set(DOMAINS.values())
    for name, kind in enums.items():
        assert isinstance(kind, GraphQLEnumType)
        assert kind.description, name
        for value_name, value in kind.values.items():
            assert value.description and len(value.description) > 10, f"{name}.{value_name}"
            assert kind.serialize(value.value) == value_name  # on the wire: the code string as before


def test_19_every_payload_reports_its_domains_error_type() -> None:
    """userErrors of a typed domain's payloads are `[XxxError!]!`, whose `code` is the domain's enum."""
    from graphql import GraphQLInterfaceType, GraphQLList, GraphQLNonNull, GraphQLObjectType

    from schema.schema import build_schema

    schema = build_schema()._schema
    typed = {value.removesuffix("Code") for value in DOMAINS.values()}
    seen: set[str] = set()
    for kind in schema.type_map.values():
        if not isinstance(kind, GraphQLObjectType) or "userErrors" not in kind.fields:
            continue
        inner = kind.fields["userErrors"].type
        while isinstance(inner, GraphQLNonNull | GraphQLList):
            inner = inner.of_type
        assert isinstance(inner, GraphQLInterfaceType)
        assert inner.name in typed, kind.name
        code = inner.fields["code"].type
        assert isinstance(code, GraphQLNonNull) and code.of_type.name == f"{inner.name}Code"
        seen.add(inner.name)
    assert seen == typed


def test_19_every_service_error_with_extra_data_keeps_its_code_string() -> None:
    """The codes are the same strings as before the enums: a DomainError's code is its enum member's value."""
    from schema.readings import READING_ERRORS
    from services import readings

    error = readings.ReadingBelowPrevious(field=["input"], meter_id=1, zone="T1", previous=1)
    converted = READING_ERRORS.one(error)
    assert converted.code == "READING_BELOW_PREVIOUS" and converted.previous == 1
