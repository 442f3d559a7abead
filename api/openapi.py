"""The OpenAPI 3.1 document, built from the endpoint declarations."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from api.params import path_schema
from api.routing import Endpoint

_PARAM = re.compile(r"{([a-z_]+)}")
_REF = "#/components/schemas/{name}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "stable machine-readable code"},
                "message": {"type": "string", "description": "what is wrong, for a person"},
                "field": {"type": ["string", "null"], "description": "the offending input, if one"},
            },
        }
    },
}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        out["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return out


def tuples_as_prefix_items(schema: Any) -> Any:
    """Tuples in OpenAPI 3.1 terms; rewrites in place and returns ``schema``.

    JSON Schema 2020-12 (OpenAPI 3.1) writes a tuple as ``prefixItems`` with ``items:
    false``; an ``items`` array is draft-7 and invalid here (msgspec before 0.19 writes
    it). A tuple of one type (``City.bbox``: four numbers) is written as an array of that
    type with ``minItems`` = ``maxItems``, which every tool reads alike: some turn
    ``prefixItems`` back into a draft-7 ``items`` array and then refuse their own result.
    """
    if isinstance(schema, dict):
        items = schema.get("items")
        if isinstance(items, list):
            schema["prefixItems"] = items
            schema["items"] = False
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            schema.setdefault("minItems", len(prefix))
            schema.setdefault("maxItems", len(prefix))
            if prefix and all(p == prefix[0] for p in prefix) and schema["items"] is False:
                del schema["prefixItems"]
                schema["items"] = prefix[0]
        for value in schema.values():
            tuples_as_prefix_items(value)
    elif isinstance(schema, list):
        for value in schema:
            tuples_as_prefix_items(value)
    return schema


_DEGREES = {"lat": 90, "lng": 180}


def bound_coordinates(schema: Any) -> Any:
    """Give every ``lat``/``lng`` number property its range in degrees (the bodies keep
    them plain floats so that geo/ refuses them with ``invalid_coordinate``)."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for name, limit in _DEGREES.items():
                prop = props.get(name)
                options = prop.get("anyOf", [prop]) if isinstance(prop, dict) else []
                for option in options:
                    if option.get("type") == "number":
                        option.setdefault("minimum", -limit)
                        option.setdefault("maximum", limit)
        for value in schema.values():
            bound_coordinates(value)
    elif isinstance(schema, list):
        for value in schema:
            bound_coordinates(value)
    return schema


def responses_of(ep: Endpoint, success: dict[str, Any]) -> dict[str, Any]:
    """Every status ``ep`` can answer: its success, what every route of its kind can
    answer (bad body, query or path; no or a bad token; wrong role; stores down), and the
    errors its own rules answer (``Endpoint.errors``)."""
    responses = dict(success)
    if ep.body is not None:
        responses["400"] = _error("body is not JSON")
        responses["413"] = _error("body too large")
        responses["415"] = _error("body is not application/json")
    responses["422"] = _error(
        "a field or parameter breaks a rule, or a query parameter is unknown "
        "(`unknown_query_parameter`); `field` names it"
    )
    if ep.public:
        responses["401"] = _error("a token was sent and it is invalid, expired or revoked")
    else:
        responses["401"] = _error("no token, or an invalid, expired or revoked one")
        responses["403"] = _error(
            f"needs the permission `{ep.permission}` (a grant) or one of the roles: "
            f"{', '.join(sorted(ep.roles))}"
        )
    if _PARAM.search(ep.path):
        responses["404"] = _error("not found, or not visible to the caller")
    for status, description in ep.errors:
        if status < 400:  # another answer that is not an error (a provider's own "success")
            responses[str(status)] = {"description": description}
            continue
        responses[str(status)] = _error(description, retry_after=status == 429)
    responses["503"] = _error("the server's stores are unavailable; try again", retry_after=True)
    return dict(sorted(responses.items()))


def build(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """The whole document."""
    types: list[Any] = []
    for ep in endpoints:
        if ep.body is not None:
            types.append(ep.body)
        if ep.returns is not None:
            types.append(ep.returns)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    for schema in (schemas, components):
        tuples_as_prefix_items(schema)
        bound_coordinates(schema)
    schema_of = {id(t): s for t, s in zip(types, schemas, strict=True)}
    components["Error"] = ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": ep.handler.__name__,
            "summary": ep.summary,
            "tags": [ep.tag],
            "x-roles": sorted(ep.roles) if ep.roles else ["public"],
            "x-permission": ep.permission,
        }
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": path_schema(n)}
            for n in _PARAM.findall(ep.path)
        ]
        params += [q.openapi() for q in ep.query]
        if params:
            op["parameters"] = params
        if not ep.public:
            op["security"] = [{"bearer": []}]
        if ep.returns is not None:
            success = {
                str(ep.status): {
                    "description": "OK",
                    "content": {ep.media_type: {"schema": schema_of[id(ep.returns)]}},
                }
            }
        else:
            success = {"204": {"description": "Done, nothing to return"}}
        if ep.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(ep.body)]}},
            }
        op["responses"] = responses_of(ep, success)
        paths.setdefault(ep.path, {})[ep.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Doorstep's REST API. Errors are always "
            '`{"error": {"code", "message", "field"}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
