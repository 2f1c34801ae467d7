"""The JSON shape check walks without recursion and names where a limit was passed."""

from __future__ import annotations

from typing import Any

import pytest

from infra.http.errors import ApiError
from infra.http.limits import MAX_JSON_CONTAINER_ITEMS, MAX_JSON_DEPTH, check_json_limits


def nested(depth: int, leaf: Any = None) -> Any:
    value: Any = [] if leaf is None else leaf
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_structure_far_deeper_than_any_recursion_limit_is_refused_not_crashed() -> None:
    with pytest.raises(ApiError) as refused:
        check_json_limits({"a": nested(200_000)})
    assert refused.value.status == 422
    assert refused.value.details["limit"] == "max_json_depth"


def test_the_depth_counts_the_body_object_as_level_one() -> None:
    check_json_limits(nested(MAX_JSON_DEPTH))
    with pytest.raises(ApiError):
        check_json_limits(nested(MAX_JSON_DEPTH + 1))


def test_scalars_do_not_add_depth() -> None:
    check_json_limits(nested(MAX_JSON_DEPTH - 1, leaf=["text", 1, None, True]))


def test_the_location_names_keys_and_indexes() -> None:
    body = {"payload": {"rows": [{}, {"cells": list(range(MAX_JSON_CONTAINER_ITEMS + 1))}]}}
    with pytest.raises(ApiError) as refused:
        check_json_limits(body)
    assert refused.value.details["at"] == "body.payload.rows[1].cells"
    assert refused.value.details["actual"] == MAX_JSON_CONTAINER_ITEMS + 1
    assert "max_json_container_items" in refused.value.message


def test_many_small_containers_within_the_limits_pass() -> None:
    check_json_limits({"rows": [{"a": [1, 2, {"b": []}]} for _ in range(MAX_JSON_CONTAINER_ITEMS)]})
