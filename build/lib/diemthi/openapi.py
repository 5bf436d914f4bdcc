"""The OpenAPI description of the public routes, served as /openapi.json."""

from __future__ import annotations

from typing import Any

from . import __version__
from .reference import COMBINATIONS, LANGUAGES, SUBJECTS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def spec() -> dict[str, Any]:
    score = {"type": "number", "minimum": 0, "maximum": 10}
    return {
        "openapi": "3.0.3",
        "info": {"title": "diemthi", "version": __version__,
                 "description": "THPT exam scores by candidate number (SBD)."},
        "paths": {
            "/v1/scores/{sbd}": {"get": {
                "summary": "One candidate's scores",
                "parameters": [
                    {"name": "sbd", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9]{8}$"}},
                    {"name": "year", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 2000, "maximum": 2100},
                     "description": "Default: the latest year with an active snapshot."},
                    {"name": "If-None-Match", "in": "header", "required": False,
                     "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "Found",
                            "headers": {"ETag": {"schema": {"type": "string"}},
                                        "Cache-Control": {"schema": {"type": "string"}}},
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Candidate"}}}},
                    "304": {"description": "Not modified (matching If-None-Match)"},
                    "400": _error("Malformed SBD or year"),
                    "403": _error("Results not published yet (release embargo)"),
                    "404": _error("Unknown SBD, or no results for that year"),
                    "429": _error("Too many requests from this client"),
                    "503": _error("No snapshot loaded yet"),
                }}},
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "OK"}}}},
            "/readyz": {"get": {"summary": "Serving a snapshot",
                                "responses": {"200": {"description": "Ready"},
                                              "503": {"description": "No snapshot yet"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text/plain"}}}},
        },
        "components": {"schemas": {
            "Candidate": {
                "type": "object", "required": ["sbd", "year", "province", "scores",
                                               "combinations"],
                "properties": {
                    "sbd": {"type": "string", "pattern": "^[0-9]{8}$"},
                    "year": {"type": "integer"},
                    "province": {"type": "object", "properties": {
                        "code": {"type": "string"}, "name": {"type": "string"}}},
                    "scores": {"type": "object", "description": "Only the subjects sat",
                               "properties": {k: score for k in SUBJECTS},
                               "additionalProperties": False},
                    "foreign_language": {"type": "object", "properties": {
                        "code": {"type": "string", "enum": list(LANGUAGES)},
                        "name": {"type": "string"}}},
                    "combinations": {"type": "object", "description":
                                     "Totals of the combinations with all three subjects sat",
                                     "properties": {c: {"type": "number"} for c in COMBINATIONS},
                                     "additionalProperties": False},
                }},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"},
                               "message": {"type": "string", "description": "Vietnamese"}}}}},
        }},
    }
