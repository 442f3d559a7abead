"""The OpenAPI 3.1 document, built from the endpoint declarations."""

from __future__ import annotations

import re
from typing import Any

import msgspec

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


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def build(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """The whole document."""
    types: list[Any] = []
    for ep in endpoints:
        if ep.body is not None:
            types.append(ep.body)
        if ep.returns is not None:
            types.append(ep.returns)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = {id(t): s for t, s in zip(types, schemas, strict=True)}
    components["Error"] = ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": ep.handler.__name__,
            "summary": ep.summary,
            "tags": [ep.tag],
            "x-roles": sorted(ep.roles) if ep.roles else ["public"],
        }
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(ep.path)
        ]
        type_names = {int: "integer", float: "number", str: "string", bool: "boolean"}
        params += [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "description": q.description,
                "schema": {"type": type_names.get(q.kind, "string")},
            }
            for q in ep.query
        ]
        if params:
            op["parameters"] = params
        if not ep.public:
            op["security"] = [{"bearer": []}]
        responses: dict[str, Any] = {}
        if ep.returns is not None:
            responses[str(ep.status)] = {
                "description": "OK",
                "content": {ep.media_type: {"schema": schema_of[id(ep.returns)]}},
            }
        else:
            responses["204"] = {"description": "Done, nothing to return"}
        if ep.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(ep.body)]}},
            }
            responses["400"] = _error("body is not JSON")
            responses["413"] = _error("body too large")
            responses["415"] = _error("body is not application/json")
        responses["422"] = _error("a field breaks a rule; `field` names it")
        if not ep.public:
            responses["401"] = _error("no token, or an invalid, expired or revoked one")
            responses["403"] = _error(f"needs one of: {', '.join(sorted(ep.roles))}")
        responses["404"] = _error("not found, or not visible to the caller")
        op["responses"] = responses
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
