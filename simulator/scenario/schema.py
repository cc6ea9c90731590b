"""The JSON Schema export of the scenario and exam formats, for editors."""

from __future__ import annotations

from typing import Any

from simulator.scenario.models import SCHEMA_VERSION, Exam, Scenario


def _with_meta(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://cka-sim.dev/schema/{name}-v{SCHEMA_VERSION}.json", **schema}


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for scenario files, with a description on every field."""
    return _with_meta(Scenario.model_json_schema(by_alias=True, mode="validation"), "scenario")


def exam_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for exam files."""
    return _with_meta(Exam.model_json_schema(by_alias=True, mode="validation"), "exam")

