"""The API's one JSON parser (``DEFAULT_PARSER_CLASSES``), in a module of its own: DRF reads its
settings, and so imports this, while ``gridplatform.api`` is still being imported."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1024 * 1024


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise exceptions.ParseError("The JSON body has an object with a key twice.")
    return result


def _no_constant(text: str) -> Any:
    raise exceptions.ParseError(f"{text} is not JSON.")


def _depth(value: Any) -> int:
    """How deeply ``value``'s lists and objects nest (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


class StrictJSONParser(JSONParser):
    """The API's one JSON parser: a body over ``MAX_JSON_BYTES``, an object with a key twice,
    ``NaN``/``Infinity``, or lists and objects nested deeper than ``MAX_JSON_DEPTH`` are
    ``malformed`` (400), as is anything that is not UTF-8 JSON, instead of whatever the last
    parser decided (or a crash: 1,000 nested brackets exhausted Python's recursion)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            raise exceptions.ParseError("The body is empty.")
        data = stream.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise TooLarge(f"The body is larger than {MAX_JSON_BYTES} bytes.")
        try:
            value = json.loads(
                data,
                object_pairs_hook=_no_duplicate_keys,
                parse_constant=_no_constant,
            )
        except RecursionError:
            raise exceptions.ParseError(
                f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
            raise exceptions.ParseError(f"The body is not JSON: {error}") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
        return value


class TooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The body is too large."
    default_code = "too_large"
