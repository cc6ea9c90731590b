"""Scenario and exam files: typed models, YAML loading with precise error locations,
``{{ var }}`` templating and the JSON Schema for editors.

The modules, each importing only those above it:

- ``problems``: :class:`Problem` and the wording helpers every part reports with
- ``fieldtypes``: durations and file modes as authors write them
- ``templating``: ``{{ var }}`` placeholders, drawing vars from a seed
- ``models``: the Scenario and Exam models and their cross-field checks
- ``diagnostics``: YAML locations of fields, validation errors in plain words
- ``loading``: reading files into models, every problem reported with FILE:LINE:COLUMN
- ``schema``, ``skeleton``: the JSON Schema export and ``cka-sim scenario new``

Everything public is re-exported here: ``from simulator.scenario import Scenario``.
"""

from simulator.scenario.diagnostics import locate
from simulator.scenario.fieldtypes import Duration, FileMode, format_duration, parse_duration
from simulator.scenario.loading import load_file, loads, validate_file
from simulator.scenario.models import (
    ATTACKS,
    DOMAINS,
    DOTTED,
    FAULT_NAME,
    RECORDS,
    SCHEMA_VERSION,
    SETUP_ACTIONS,
    SLUG,
    VAR_NAME,
    ApplyStep,
    Check,
    ClusterReq,
    Component,
    Difficulty,
    Domain,
    Exam,
    ExamSample,
    ExamTaskRef,
    FaultStep,
    FileSpec,
    FileStep,
    Instance,
    NodeName,
    RecordStep,
    RunStep,
    Scalar,
    Scenario,
    ScenarioSource,
    SetupStep,
    SnapshotStep,
    SnapshotTarget,
    VarSpec,
    WrongSolution,
)
from simulator.scenario.problems import Problem, did_you_mean
from simulator.scenario.schema import exam_json_schema, json_schema
from simulator.scenario.skeleton import SKELETON, skeleton
from simulator.scenario.templating import (
    PLACEHOLDER,
    RESERVED_NAMES,
    SAFE_WORD,
    TEMPLATED_FIELDS,
    draw_vars,
    new_seed,
    placeholders,
    render,
)

__all__ = [
    "ATTACKS", "DOMAINS", "DOTTED", "FAULT_NAME", "PLACEHOLDER", "RECORDS", "RESERVED_NAMES", "SAFE_WORD",
    "SCHEMA_VERSION", "SETUP_ACTIONS", "SKELETON", "SLUG", "TEMPLATED_FIELDS", "VAR_NAME",
    "ApplyStep", "Check", "ClusterReq", "Component", "Difficulty", "Domain", "Duration", "Exam",
    "ExamSample", "ExamTaskRef", "FaultStep", "FileMode", "FileSpec", "FileStep", "Instance", "NodeName",
    "Problem", "RecordStep", "RunStep", "Scalar", "Scenario", "ScenarioSource", "SetupStep",
    "SnapshotStep", "SnapshotTarget", "VarSpec", "WrongSolution",
    "did_you_mean", "draw_vars", "exam_json_schema", "format_duration", "json_schema",
    "load_file", "loads", "locate", "new_seed", "parse_duration", "placeholders", "render",
    "skeleton", "validate_file",
]
