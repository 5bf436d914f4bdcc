"""The OpenAPI description of the public routes, served as /openapi.json."""

from __future__ import annotations

from typing import Any

from . import __version__
from .reference import COMBINATIONS, LANGUAGES, SUBJECTS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


_RANK = {"$ref": "#/components/schemas/Rank"}


def _stats(summary: str, scope: bool = False) -> dict[str, Any]:
    parameters = [{"name": "year", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9]{4}$"}}]
    if scope:
        parameters.append({"name": "scope", "in": "path", "required": True,
                           "schema": {"type": "string", "pattern": "^([0-9]{2}|national)$"}})
    return {"get": {"summary": summary, "parameters": parameters, "responses": {
        "200": {"description": "The distributions", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Stats"}}}},
        "304": {"description": "Not modified (matching If-None-Match)"},
        "400": _error("Malformed year"),
        "403": _error("Results not published yet (release embargo)"),
        "404": _error("No results for that year, province or national distribution"),
    }}}


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
            "/v1/stats/{year}": _stats("Phổ điểm of every candidate of the year's snapshot"),
            "/v1/stats/{year}/{scope}": _stats(
                "Phổ điểm of one province (scope: its 2-digit code) or of the whole country "
                "(scope: national, the imported national distribution)", scope=True),
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
                    "ranks": {"type": "object", "description": "Per key of scores and "
                              "combinations: where the candidate stands",
                              "additionalProperties": {"type": "object", "properties": {
                                  "nation": {"allOf": [_RANK], "properties": {"source": {
                                      "type": "string", "enum": ["snapshot", "national"]}}},
                                  "province": _RANK}}},
                    "previous_year": {"type": "object", "properties": {
                        "year": {"type": "integer"},
                        "equivalents": {"type": "object", "description": "Last year's score "
                                        "that stood as high", "additionalProperties": {
                                            "type": "number"}}}},
                }},
            "Rank": {"type": "object", "required": ["higher", "equal", "of"], "properties": {
                "higher": {"type": "integer", "description": "strictly greater value"},
                "equal": {"type": "integer", "description": "the same value, candidate included"},
                "of": {"type": "integer", "description": "candidates with a value"}}},
            "Stats": {"type": "object", "required": ["year", "province", "source", "candidates",
                                                    "distributions"], "properties": {
                "year": {"type": "integer"},
                "province": {"type": "object", "nullable": True},
                "source": {"type": "string", "enum": ["snapshot", "national"]},
                "candidates": {"type": "integer", "nullable": True},
                "distributions": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {
                        "count": {"type": "integer"}, "mean": {"type": "number"},
                        "median": {"type": "number"},
                        "at_most_1": {"type": "integer", "description": "subjects: scores <= 1"},
                        "tens": {"type": "integer", "description": "subjects: scores of 10"},
                        "histogram": {"type": "array", "items": {
                            "type": "array", "items": {"type": "number"}}}}}}}},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"},
                               "message": {"type": "string", "description": "Vietnamese"}}}}},
        }},
    }
