"""What the information sections share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from strawberry import relay

from resolvers.billing import download_url
from schema.node import canonical, parse_global_id
from services import storage


def decode_id(value: strawberry.ID, type_name: str) -> int:
    global_id = parse_global_id(value, expected_type=type_name)
    try:
        return int(canonical(global_id).node_id)
    except ValueError as error:
        from schema.node import InvalidId

        raise InvalidId(value) from error


def encode_id(type_name: str, value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(relay.GlobalID(type_name, str(value))))


def file_url(info: strawberry.Info, file_id: int | None) -> str | None:
    return None if file_id is None else download_url(info, storage.file_target(file_id)).url


def int_ids(node_ids: Iterable[str]) -> list[int]:
    result = []
    for node_id in node_ids:
        try:
            result.append(int(node_id))
        except ValueError:
            result.append(0)
    return result


def payload_id(result: Any, type_name: str) -> strawberry.ID | None:
    return encode_id(type_name, result.id) if result is not None else None


def decode_optional_id(value: strawberry.ID | None, type_name: str) -> int | None:
    return None if value is None else decode_id(value, type_name)
