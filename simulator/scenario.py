"""Scenario and exam files: typed models, YAML loading with precise error locations,
``{{ var }}`` templating and the JSON Schema for editors.

A scenario file is one task (``kind: scenario``, the default); an exam file (``kind: exam``)
names or samples scenarios under one clock. Files are read with YAML safe-load semantics;
every problem is reported as ``FILE:LINE:COLUMN: field.path: message``.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Union, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

from simulator.cluster.node import ClusterSpec
from simulator.errors import CatalogError, ScenarioError

if TYPE_CHECKING:
    from simulator.catalog import Catalog

SCHEMA_VERSION = 1

DOMAINS: dict[str, str] = {
    "cluster-architecture": "Cluster Architecture, Installation and Configuration",
    "workloads-scheduling": "Workloads and Scheduling",
    "services-networking": "Services and Networking",
    "storage": "Storage",
    "troubleshooting": "Troubleshooting",
}
Domain = Literal[
    "cluster-architecture", "workloads-scheduling", "services-networking", "storage",
    "troubleshooting",
]
Difficulty = Literal["easy", "medium", "hard"]
Component = Literal["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]

SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"
VAR_NAME = r"^[a-z_][a-z0-9_]*$"
# Checker names are dotted (snapshot.valid) except the instructors' plain ``script``.
DOTTED = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$"
FAULT_NAME = r"^[a-z][a-z0-9_.-]*$"

# Words inside {{ }} that belong to Go templates (kubectl -o go-template=...) and are
# therefore never placeholders; a var cannot take these names.
RESERVED_NAMES = frozenset({"end", "else", "break", "continue", "nil"})
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_EXPRESSION = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*\|(?!\|)|\.[A-Za-z_]|\()")
SAFE_WORD = re.compile(r"^[A-Za-z0-9._/:@+=,-]+$")

# setup step action -> what ``record:`` stores in the attempt state.
RECORDS = {"revision": "setup_revision"}


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> int:
    """Seconds in ``value``: ``90s``, ``8m``, ``1h30m``, ``1h`` or a bare int of seconds.

    Raises ValueError with a message a human understands for anything else.
    """
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.match(text)
            if match and any(match.groups()):
                h, m, s = (int(g or 0) for g in match.groups())
                seconds = h * 3600 + m * 60 + s
    if seconds is None or seconds <= 0:
        raise ValueError(f"expected a duration like 90s, 8m or 1h30m, got {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """``480`` -> ``8m``, ``5400`` -> ``1h30m``, ``90`` -> ``1m30s``."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


def _duration(value: Any) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[
    int,
    BeforeValidator(_duration),
    WithJsonSchema({
        "oneOf": [
            {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+s)?$|^\d+$", "examples": ["90s", "8m", "1h30m"]},
            {"type": "integer", "minimum": 1},
        ],
    }),
]


def _file_mode(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip()):
        return int(value.strip().replace("o", ""), 8)
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o777:
            return value
        raise PydanticCustomError(
            "file_mode", "mode {value} is read as a decimal number; write it as 0644 or '0644'",
            {"value": value})
    raise PydanticCustomError("file_mode", "expected a file mode like 0644 or '0755', got {got}",
                              {"got": _show(value)})


FileMode = Annotated[
    int,
    BeforeValidator(_file_mode),
    WithJsonSchema({"oneOf": [{"type": "string", "pattern": "^0?[0-7]{3,4}$"},
                              {"type": "integer", "minimum": 0, "maximum": 511}]}),
]


# --------------------------------------------------------------------------- models

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _FieldProblems(ValueError):
    """Several problems found by a cross-field check, each with its own location."""

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{_format_path(loc) or '(file)'}: {msg}" for loc, msg in items))


def _schema_version(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise PydanticCustomError(
            "schema_version",
            "unsupported format version {value}; this cka-sim reads version {known}",
            {"value": value, "known": SCHEMA_VERSION})
    return value


class ClusterReq(_Model):
    """The practice cluster the scenario needs."""

    control_planes: int = Field(1, ge=1, le=5, description="Number of control-plane nodes (1-5): controlplane, controlplane2, ...")
    workers: int = Field(0, ge=0, le=5, description="Number of worker nodes (0-5): node01, node02, ...")
    components: list[Component] = Field(
        default_factory=lambda: ["etcd"],
        description="Control-plane components to run as static pods; etcd is always required.")

    @field_validator("components")
    @classmethod
    def _components(cls, value: list[str]) -> list[str]:
        if "etcd" not in value:
            raise PydanticCustomError("components", "must include etcd, got {got}", {"got": value})
        if len(set(value)) != len(value):
            raise PydanticCustomError("components", "lists a component twice: {got}", {"got": value})
        needs_api = [c for c in value if c in ("kube-controller-manager", "kube-scheduler")]
        if needs_api and "kube-apiserver" not in value:
            raise PydanticCustomError(
                "components", "{names} need kube-apiserver; add it to the list",
                {"names": " and ".join(needs_api)})
        return value

    def node_names(self) -> list[str]:
        """Node names as on the exam: controlplane, controlplane2, ..., node01, ..."""
        return [n.name for n in self.to_spec("x").node_specs()]

    def to_spec(self, name: str) -> ClusterSpec:
        """The driver-facing cluster spec, components in start order."""
        order = get_args(Component)
        components = tuple(sorted(self.components, key=order.index))
        return ClusterSpec(name=name, control_planes=self.control_planes, workers=self.workers,
                           components=components)


Scalar = str | int | float | bool


class VarSpec(_Model):
    """How a var is drawn per attempt: exactly one of choice, range or value."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["choice"]}, {"required": ["range"]}, {"required": ["value"]}]})

    choice: list[Scalar] | None = Field(None, min_length=1, description="Pick one of these values at random.")
    range: tuple[int, int] | None = Field(None, description="Pick a whole number from lo to hi inclusive: [lo, hi].")
    value: Scalar | None = Field(None, description="Always this value.")

    @model_validator(mode="after")
    def _exactly_one(self) -> VarSpec:
        given = [k for k in ("choice", "range", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "var_spec", "a var needs exactly one of choice, range or value, got {got}",
                {"got": ", ".join(given) or "none"})
        if self.range is not None and self.range[0] > self.range[1]:
            raise PydanticCustomError("var_spec", "range [lo, hi] needs lo <= hi, got {got}",
                                      {"got": list(self.range)})
        return self

    def values(self) -> list[Scalar]:
        """Every value this var can take (a range lists its bounds only)."""
        if self.choice is not None:
            return list(self.choice)
        if self.range is not None:
            return list(self.range)
        return [self.value]  # type: ignore[list-item]

    def draw(self, rng: random.Random) -> Scalar:
        """One value, drawn with ``rng``."""
        if self.choice is not None:
            return rng.choice(self.choice)
        if self.range is not None:
            return rng.randint(*self.range)
        return self.value  # type: ignore[return-value]


NodeName = Annotated[str | None, Field(None, description="Node to act on (default: the first control plane).")]


class ApplyStep(_Model):
    """Create Kubernetes objects through the API server (needs kube-apiserver)."""

    apply: dict[str, Any] | list[dict[str, Any]] = Field(
        description="A Kubernetes object (mapping with at least `kind`) or a list of them.")
    node: NodeName = None

    @field_validator("apply")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        for obj in value if isinstance(value, list) else [value]:
            if not isinstance(obj.get("kind"), str):
                raise PydanticCustomError("apply", "each object needs a kind, e.g. kind: Namespace")
        return value


class SnapshotTarget(_Model):
    """Where an etcd snapshot taken during setup is written."""

    path: str = Field(pattern=r"^/", description="Absolute path on the node for the snapshot file.")


class SnapshotStep(_Model):
    """Take an etcd snapshot now (e.g. the backup the learner restores later)."""

    snapshot: SnapshotTarget = Field(description="Snapshot settings: {path: /opt/backup/x.db}.")
    node: NodeName = None


class FaultStep(_Model):
    """Inject a registered fault (``cka_sim.faults`` entry point)."""

    fault: str = Field(pattern=FAULT_NAME, description="Name of the fault, e.g. delete-namespace.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="Parameters for the fault.")
    node: NodeName = None


class RunStep(_Model):
    """Run a bash script as root on a node."""

    run: str = Field(min_length=1, description="Bash script, run with bash -c.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the script.")
    timeout: Duration = Field(120, description="Give up after this long (default 2m).")
    node: NodeName = None


class FileSpec(_Model):
    """A file written on a node."""

    path: str = Field(pattern=r"^/", description="Absolute path; parent directories are created.")
    content: str = Field("", description="File content (text).")
    mode: FileMode = Field(0o644, description="Permissions, e.g. 0644 or '0600'.")


class FileStep(_Model):
    """Write a file on a node."""

    file: FileSpec = Field(description="The file: {path, content, mode}.")
    node: NodeName = None


class RecordStep(_Model):
    """Store a fact in the attempt state for checkers: ``revision`` stores etcd's current
    revision as ``setup_revision``."""

    record: Literal["revision"] = Field(description="What to record: revision (etcd's current revision -> state.setup_revision).")
    node: NodeName = None


SETUP_ACTIONS: dict[str, type[_Model]] = {
    "apply": ApplyStep, "snapshot": SnapshotStep, "fault": FaultStep, "run": RunStep,
    "file": FileStep, "record": RecordStep,
}
_TAGS = {cls.__name__: cls for cls in SETUP_ACTIONS.values()}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        actions = [k for k in SETUP_ACTIONS if k in value]
        if len(actions) == 1:
            return SETUP_ACTIONS[actions[0]].__name__
    elif isinstance(value, BaseModel):
        return type(value).__name__
    return None


SetupStep = Annotated[
    Union[tuple(Annotated[cls, Tag(cls.__name__)] for cls in SETUP_ACTIONS.values())],  # type: ignore[misc]  # noqa: UP007
    Discriminator(_step_kind, custom_error_type="setup_step",
                  custom_error_message="a setup step needs exactly one of apply, snapshot, fault, run, file or record"),
]


class Check(_Model):
    """One graded check: a registered checker, its parameters and its points."""

    name: str = Field(min_length=1, description="What the learner sees, e.g. 'Namespace billing is back'. Unique in the scenario.")
    use: str = Field(pattern=DOTTED, description="Checker name, e.g. snapshot.valid, kube.exists or script.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="Parameters for the checker.")
    points: int = Field(1, ge=1, description="Points earned when the check passes (partial credit).")
    node: str | None = Field(None, description="Node to check on (default: the first control plane).")
    guard: bool = Field(False, description="Passes in a fresh environment on purpose (e.g. 'the cluster still works'); "
                                           "exempt from the fresh-environment-scores-0 gate.")


class WrongSolution(_Model):
    """A plausible mistake; the quality gate asserts it loses exactly the named checks."""

    name: str = Field(min_length=1, description="What the mistake is.")
    script: str = Field(min_length=1, description="Bash script playing the mistake (same `# on node NAME` sections as solution).")
    fails: list[str] = Field(min_length=1, description="Names of the checks this mistake must fail (all others pass).")


class Scenario(_Model):
    """One task: a cluster, setup, the task text, checks and a reference solution."""

    schema_version: int = Field(SCHEMA_VERSION, alias="schema", description="Format version of this file (1).")
    kind: Literal["scenario"] = Field("scenario", description="scenario (default) or exam.")
    id: str = Field(pattern=SLUG, description="Unique slug: lowercase letters, digits and dashes, e.g. etcd-backup.")
    title: str = Field(min_length=1, description="One line shown in lists.")
    domain: Domain = Field(description="CKA curriculum domain: " + "; ".join(f"{k} ({v})" for k, v in DOMAINS.items()) + ".")
    difficulty: Difficulty = Field(description="easy, medium or hard.")
    time_limit: Duration = Field(description="Time allowed, e.g. 8m or 1h30m.")
    cluster: ClusterReq = Field(default_factory=ClusterReq, description="The practice cluster to provision.")
    vars: dict[Annotated[str, Field(pattern=VAR_NAME)], VarSpec] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False},
        description="Values drawn per attempt from a recorded seed; use them as {{ name }}.")
    setup: list[SetupStep] = Field(default_factory=list, description="Steps applied in order before the clock starts.")
    task: str = Field(min_length=1, description="The task as shown to the learner (markdown).")
    hints: list[str] = Field(default_factory=list, description="Hints revealed one at a time.")
    checks: list[Check] = Field(min_length=1, description="Graded checks; the score is the sum of points of passing checks.")
    explanation: str = Field("", description="Root cause and reasoning, shown after submission (markdown).")
    solution: str = Field(min_length=1, description="Reference solution (bash), run by the quality gate; must score full marks. "
                          "It runs on the first node; a line `# on node NAME` runs the rest on NAME, "
                          "as a candidate would after ssh.")
    wrong_solutions: list[WrongSolution] = Field(default_factory=list, description="Plausible mistakes and the checks each must fail.")
    tags: list[str] = Field(default_factory=list, description="Free-form labels for filtering.")

    _source: Path | None = PrivateAttr(None)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return _schema_version(value)

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from, if any."""
        return self._source

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks)

    @model_validator(mode="after")
    def _cross_fields(self, info: ValidationInfo) -> Scenario:
        if (info.context or {}).get("rendered"):
            return self
        problems = _scenario_problems(self)
        if problems:
            raise _FieldProblems(problems)
        return self

    def instantiate(self, seed: int) -> Instance:
        """This scenario with vars drawn from ``seed`` substituted everywhere they may appear.

        Returns ``(scenario, values)``; the same seed always gives the same values.
        """
        values = draw_vars(self, seed)
        data = self.model_dump(by_alias=True)
        for field in TEMPLATED_FIELDS:
            if field == "checks":
                for check in data["checks"]:
                    check["name"] = render(check["name"], values)
                    check["with"] = render(check["with"], values)
            else:
                data[field] = render(data[field], values)
        rendered = Scenario.model_validate(data, context={"rendered": True})
        rendered._source = self._source
        return Instance(rendered, values)


class Instance(NamedTuple):
    """A scenario with its drawn values substituted, and those values."""

    scenario: Scenario
    values: dict[str, Any]


class ExamSample(_Model):
    """Draw scenarios at random instead of naming them."""

    count: int = Field(ge=1, description="How many scenarios to draw.")
    domains: list[Domain] | None = Field(None, min_length=1, description="Draw only from these domains, spread evenly (default: all).")
    seed: int | None = Field(None, description="Fixed seed: the same exam every time (default: a new draw per attempt).")


class Exam(_Model):
    """Several scenarios under one clock with a pass mark."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["tasks"]}, {"required": ["sample"]}]})

    schema_version: int = Field(SCHEMA_VERSION, alias="schema", description="Format version of this file (1).")
    kind: Literal["exam"] = Field(description="Must be exam.")
    id: str = Field(pattern=SLUG, description="Unique slug, e.g. mock-exam-1.")
    title: str = Field(min_length=1, description="One line shown in lists.")
    description: str = Field("", description="Shown before the exam starts (markdown).")
    duration: Duration = Field(description="Total time, e.g. 2h.")
    pass_mark: int = Field(66, ge=1, le=100, description="Percent of all points needed to pass (default 66).")
    tasks: list[str] | None = Field(None, min_length=1, description="Scenario ids, in order. Give tasks or sample, not both.")
    sample: ExamSample | None = Field(None, description="Draw scenarios at random. Give tasks or sample, not both.")

    _source: Path | None = PrivateAttr(None)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        return _schema_version(value)

    @property
    def source(self) -> Path | None:
        """The file this exam was loaded from, if any."""
        return self._source

    @model_validator(mode="after")
    def _tasks_or_sample(self) -> Exam:
        if (self.tasks is None) == (self.sample is None):
            raise _FieldProblems([((), "an exam needs exactly one of tasks (a list of scenario ids) or sample")])
        if self.tasks is not None:
            seen: set[str] = set()
            dups = [(("tasks", i), f"scenario {t!r} is listed twice")
                    for i, t in enumerate(self.tasks) if t in seen or seen.add(t)]  # type: ignore[func-returns-value]
            if dups:
                raise _FieldProblems(dups)
        return self

    def resolve(self, catalog: Catalog, rng: random.Random) -> list[Scenario]:
        """The exam's scenarios: the named tasks in order, or a draw spread over the domains.

        ``sample.seed`` (if set) replaces ``rng``. Raises CatalogError for unknown ids or
        when the catalog holds too few scenarios to draw from.
        """
        if self.tasks is not None:
            unknown = [t for t in self.tasks if t not in catalog.scenarios]
            if unknown:
                raise CatalogError(f"exam {self.id!r} names unknown scenario(s): {', '.join(unknown)}",
                                   hint="check the ids with `cka-sim list`")
            return [catalog.scenarios[t] for t in self.tasks]
        assert self.sample is not None
        if self.sample.seed is not None:
            rng = random.Random(self.sample.seed)
        domains = self.sample.domains or list(DOMAINS)
        pools = []
        for domain in domains:
            pool = sorted((s for s in catalog.scenarios.values() if s.domain == domain), key=lambda s: s.id)
            rng.shuffle(pool)
            pools.append(pool)
        available = sum(len(p) for p in pools)
        if available < self.sample.count:
            raise CatalogError(
                f"exam {self.id!r} samples {self.sample.count} scenarios but only {available} "
                f"are in {', '.join(domains)}",
                hint="lower sample.count, add domains, or add scenarios with --scenarios DIR")
        picked: list[Scenario] = []
        while len(picked) < self.sample.count:
            for pool in pools:
                if pool and len(picked) < self.sample.count:
                    picked.append(pool.pop())
        return picked


# --------------------------------------------------------------------------- templating

TEMPLATED_FIELDS = ("task", "hints", "setup", "checks", "explanation", "solution", "wrong_solutions")


def placeholders(text: str) -> list[str]:
    """Names of the ``{{ name }}`` placeholders in ``text`` (Go-template words excluded)."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1) not in RESERVED_NAMES]


def render(obj: Any, values: Mapping[str, Any]) -> Any:
    """``obj`` with ``{{ name }}`` replaced by ``values[name]`` in every string it holds.

    Lists, tuples and dict values are walked (dict keys are not). A string that is exactly one
    placeholder becomes the value itself (an int stays an int); otherwise the value is
    inserted as text. No expressions, filters or code: anything else in braces stays as is.
    Raises ScenarioError for a name missing from ``values``.
    """
    if isinstance(obj, str):
        whole = PLACEHOLDER.fullmatch(obj.strip())
        if whole and whole.group(1) not in RESERVED_NAMES:
            return _value(whole.group(1), values)

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) in RESERVED_NAMES:
                return match.group(0)
            return str(_value(match.group(1), values))

        return PLACEHOLDER.sub(substitute, obj)
    if isinstance(obj, list | tuple):
        return type(obj)(render(item, values) for item in obj)
    if isinstance(obj, dict):
        return {key: render(item, values) for key, item in obj.items()}
    return obj


def _value(name: str, values: Mapping[str, Any]) -> Any:
    try:
        return values[name]
    except KeyError:
        raise ScenarioError(f"template uses {{{{ {name} }}}} but no value was given for it",
                            hint=f"known values: {', '.join(sorted(values)) or 'none'}") from None


def draw_vars(scenario: Scenario, seed: int) -> dict[str, Any]:
    """One value per var, drawn deterministically from ``seed`` in sorted var-name order."""
    rng = random.Random(seed)
    return {name: scenario.vars[name].draw(rng) for name in sorted(scenario.vars)}


def new_seed() -> int:
    """A fresh seed for an attempt (record it to replay the same values)."""
    return secrets.randbelow(2**31)


def _strings(obj: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(obj, str):
        yield loc, obj
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from _strings(item, (*loc, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _strings(item, (*loc, key))


def _is_templated(loc: tuple[str | int, ...]) -> bool:
    if not loc or loc[0] not in TEMPLATED_FIELDS:
        return False
    if loc[0] == "checks":
        return len(loc) > 2 and loc[2] in ("name", "with")
    return True


def _is_script(loc: tuple[str | int, ...]) -> bool:
    return (loc == ("solution",)
            or (loc[0] == "setup" and loc[2:] == ("run",))
            or (loc[0] == "wrong_solutions" and loc[2:] == ("script",)))


def _scenario_problems(sc: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name in sc.vars:
        if name in RESERVED_NAMES:
            problems.append((("vars", name), f"{name!r} is a Go template word and cannot name a var"))

    names: dict[str, int] = {}
    for i, check in enumerate(sc.checks):
        if check.name in names:
            problems.append((("checks", i, "name"),
                             f"check name {check.name!r} is already used by checks[{names[check.name]}]"))
        names.setdefault(check.name, i)
    if all(c.guard for c in sc.checks):
        problems.append((("checks",), "every check is a guard; at least one check must be earned by the learner"))
    for i, wrong in enumerate(sc.wrong_solutions):
        for j, name in enumerate(wrong.fails):
            if name not in names:
                problems.append((("wrong_solutions", i, "fails", j),
                                 f"no check is named {name!r}" + did_you_mean(name, names)))

    nodes = sc.cluster.node_names()
    for field, items in (("setup", sc.setup), ("checks", sc.checks)):
        for i, item in enumerate(items):
            if item.node is not None and item.node not in nodes:
                problems.append(((field, i, "node"), f"no node {item.node!r} in this cluster; nodes: "
                                 f"{', '.join(nodes)}" + did_you_mean(item.node, nodes)))
    if "kube-apiserver" not in sc.cluster.components:
        for i, step in enumerate(sc.setup):
            if isinstance(step, ApplyStep):
                problems.append((("setup", i, "apply"),
                                 "apply needs kube-apiserver in cluster.components"))

    data = sc.model_dump(by_alias=True)
    for key in ("vars", "schema", "kind", "cluster"):
        data.pop(key, None)
    unsafe: set[str] = set()
    for loc, text in _strings(data, ()):
        for match in _EXPRESSION.finditer(text):
            problems.append((loc, (f"{match.group(0)}...}}}} is not allowed: templates hold a plain "
                                   "{{ name }}, no filters, attributes or calls")))
        used = placeholders(text)
        if not used:
            continue
        if not _is_templated(loc):
            problems.append((loc, (f"{{{{ {used[0]} }}}} is not substituted in this field; vars go in "
                                   "task, hints, setup, checks (name, with), explanation, solution "
                                   "and wrong_solutions")))
            continue
        for name in used:
            if name not in sc.vars:
                problems.append((loc, f"{{{{ {name} }}}} is not defined in vars"
                                      + did_you_mean(name, sc.vars)))
            elif _is_script(loc) and name not in unsafe:
                bad = [v for v in sc.vars[name].values() if not SAFE_WORD.match(str(v))]
                if bad:
                    unsafe.add(name)
                    problems.append((("vars", name),
                                     (f"var {name!r} is inserted into a bash script, so each value must "
                                      f"be a plain word (letters, digits, . _ - / : @ + = ,); "
                                      f"{str(bad[0])!r} is not")))
    return problems


# --------------------------------------------------------------------------- problems and loading

@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem in a file: where (1-based line and column, if known), which field, what."""

    file: str
    line: int | None
    column: int | None
    field_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f" {self.field_path}:" if self.field_path else ""
        return f"{where}:{field} {self.message}"


def _format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: Any, options: Any) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``options``, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unwrap(tp: Any) -> list[Any]:
    """The BaseModel classes and containers reachable from a type annotation."""
    args = get_args(tp)
    origin = getattr(tp, "__origin__", None)
    if origin is Annotated:
        return _unwrap(args[0])
    if args and origin not in (list, dict, tuple):
        return [t for arg in args for t in _unwrap(arg)]
    return [tp]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose field ``loc[-1]`` is (best effort, for did-you-mean)."""
    current: list[Any] = [model]
    for part in loc[:-1]:
        if part in _TAGS:
            current = [_TAGS[part]]
            continue
        nxt: list[Any] = []
        for tp in current:
            origin = getattr(tp, "__origin__", None)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                for name, info in tp.model_fields.items():
                    if part in (name, info.alias):
                        nxt += _unwrap(info.annotation)
            elif origin is list and isinstance(part, int):
                nxt += _unwrap(get_args(tp)[0])
            elif origin is dict and isinstance(part, str):
                nxt += _unwrap(get_args(tp)[1])
        current = nxt
    models = [t for t in current if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def _humanize(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        model = _model_at(root, err["loc"])
        key = err["loc"][-1]
        if model is None:
            return f"unknown field {key!r}"
        known = [info.alias or name for name, info in model.model_fields.items()]
        return f"unknown field {key!r}" + (did_you_mean(key, known)
                                           or f"; expected one of: {', '.join(known)}")
    if kind == "setup_step":
        if not isinstance(value, Mapping):
            return f"expected a setup step (a mapping like `run: ...`), got {_show(value)}"
        given = [k for k in SETUP_ACTIONS if k in value]
        if len(given) > 1:
            return f"a setup step does one thing; this one has {', '.join(given)}: split it into steps"
        guess = "".join(did_you_mean(k, SETUP_ACTIONS) for k in value if k != "node")[:80]
        return "a setup step needs exactly one of apply, snapshot, fault, run, file or record" + guess
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {_show(value)}" + did_you_mean(value, re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        what = {
            SLUG: "a slug like etcd-backup (lowercase letters, digits and dashes, 2-63 characters)",
            VAR_NAME: "a var name like backup_file (lowercase letters, digits, underscores)",
            DOTTED: "a checker name like snapshot.valid or script",
            FAULT_NAME: "a fault name like delete-namespace",
            r"^/": "an absolute path like /opt/backup/etcd.db",
        }.get(pattern, f"text matching {pattern}")
        return f"expected {what}, got {_show(value)}"
    simple = {
        "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
        "int_from_float": "a whole number", "bool_type": "true or false", "bool_parsing": "true or false",
        "list_type": "a list", "tuple_type": "a list [lo, hi]", "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
        "float_type": "a number", "float_parsing": "a number",
    }
    if kind in simple:
        return f"expected {simple[kind]}, got {_show(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {op} {bound}, got {_show(value)}"
    if kind == "too_short":
        if ctx.get("min_length") == 1 and isinstance(value, list | dict):
            return "expected at least one item, got none"
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return err["msg"]
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _walk(root: yaml.Node, loc: tuple[str | int, ...], *, key: bool = False
          ) -> tuple[yaml.Node, list[str | int]]:
    """The YAML node for ``loc`` (or its nearest existing parent) and the matched path.

    ``key`` prefers the key node of the last mapping entry (for unknown fields).
    """
    node, anchor, path = root, root, []
    last_key: yaml.Node | None = None
    for part in loc:
        if part in _TAGS:
            continue
        if part == "[key]":
            anchor = last_key or anchor
            continue
        found = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    found = (k, v)
            if found:
                last_key, node = found
                anchor = node if isinstance(node, yaml.ScalarNode) else last_key
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = (None, node.value[part])
            node = anchor = node.value[part]
        if found:
            path.append(part)
    if key and last_key is not None and path and path[-1] == loc[-1]:
        anchor = last_key
    return anchor, path


def locate(path: Path | str, loc: tuple[str | int, ...]) -> tuple[int | None, int | None]:
    """1-based (line, column) of field ``loc`` in a YAML file, or its nearest parent."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None, None
    if root is None:
        return None, None
    node, _ = _walk(root, loc)
    return node.start_mark.line + 1, node.start_mark.column + 1


def _duplicates(node: yaml.Node, loc: tuple[str | int, ...], file: str,
                seen: set[int]) -> Iterator[Problem]:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in first:
                    line = first[k.value].start_mark.line + 1
                    yield Problem(file, k.start_mark.line + 1, k.start_mark.column + 1,
                                  _format_path((*loc, k.value)),
                                  f"duplicate key {k.value!r} (first at line {line}); "
                                  "YAML would silently keep only the last one")
                first.setdefault(k.value, k)
            yield from _duplicates(v, (*loc, k.value if isinstance(k, yaml.ScalarNode) else "?"), file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, (*loc, i), file, seen)


def _validation_problems(exc: ValidationError, model: type[BaseModel], root: yaml.Node,
                         file: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        cross = (err.get("ctx") or {}).get("error")
        items = ([((*err["loc"], *loc), msg) for loc, msg in cross.items]
                 if isinstance(cross, _FieldProblems) else [(err["loc"], _humanize(err, model))])
        for loc, message in items:
            node, path = _walk(root, loc, key=err["type"] == "extra_forbidden")
            clean = [p for p in loc if p not in _TAGS and p != "[key]"]
            if err["type"] == "missing" or path == clean[:-1]:
                path = clean
            problems.append(Problem(file, node.start_mark.line + 1, node.start_mark.column + 1,
                                    _format_path(tuple(path)), message))
    return problems


def _parse(text: str, file: str) -> tuple[Scenario | Exam | None, list[Problem]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = exc.problem or exc.context or "unreadable YAML"
        if exc.context and exc.problem and exc.context_mark:
            detail += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return None, [Problem(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                              "", f"YAML syntax error: {detail}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, None, "", f"YAML syntax error: {exc}")]
    if root is None:
        return None, [Problem(file, 1, 1, "", "the file is empty; expected a scenario "
                                              "(`cka-sim scenario new ID` writes a skeleton)")]
    if not isinstance(root, yaml.MappingNode):
        what = "a list" if isinstance(root, yaml.SequenceNode) else repr(root.value)
        return None, [Problem(file, root.start_mark.line + 1, root.start_mark.column + 1, "",
                              f"expected a mapping of fields (id: ..., title: ...) at the top level, got {what}")]
    problems = list(_duplicates(root, (), file, set()))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # composed fine but cannot be constructed (e.g. bad !!tag)
        mark = getattr(exc, "problem_mark", None)
        return None, problems + [Problem(file, mark.line + 1 if mark else None,
                                         mark.column + 1 if mark else None, "", f"YAML error: {exc}")]
    kind = data.get("kind", "scenario")
    if kind not in ("scenario", "exam"):
        node, _ = _walk(root, ("kind",))
        return None, problems + [Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, "kind",
                                         f"expected scenario or exam, got {_show(kind)}"
                                         + did_you_mean(kind, ("scenario", "exam")))]
    model: type[Scenario | Exam] = Exam if kind == "exam" else Scenario
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(exc, model, root, file)
        obj = None
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if problems:
        return None, problems
    return obj, []


def _read(path: Path) -> tuple[str | None, list[Problem]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [Problem(str(path), None, None, "", "no such file")]
    except IsADirectoryError:
        return None, [Problem(str(path), None, None, "", "is a directory, expected a .yaml file")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), None, None, "", f"cannot read: {exc}")]


def validate_file(path: Path | str) -> list[Problem]:
    """Every problem in a scenario or exam file; an empty list means it is valid."""
    text, problems = _read(Path(path))
    if text is None:
        return problems
    return _parse(text, str(path))[1]


def loads(text: str, file: str = "<string>") -> Scenario | Exam:
    """A scenario or exam from YAML ``text``; ScenarioError listing every problem otherwise."""
    obj, problems = _parse(text, file)
    if obj is None:
        raise _error(file, problems)
    return obj


def load_file(path: Path | str) -> Scenario | Exam:
    """The scenario or exam in ``path`` (its ``source`` set); ScenarioError listing every problem."""
    path = Path(path)
    text, problems = _read(path)
    if text is None:
        raise _error(str(path), problems)
    obj = loads(text, str(path))
    obj._source = path
    return obj


def _error(file: str, problems: list[Problem]) -> ScenarioError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return ScenarioError(f"{file} is not a valid scenario file ({count})",
                         hint="fix the lines listed; `cka-sim scenario schema` prints the format",
                         problems=[str(p) for p in problems])


# --------------------------------------------------------------------------- schema and skeleton

def _with_meta(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://cka-sim.dev/schema/{name}-v{SCHEMA_VERSION}.json", **schema}


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for scenario files, with a description on every field."""
    return _with_meta(Scenario.model_json_schema(by_alias=True, mode="validation"), "scenario")


def exam_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for exam files."""
    return _with_meta(Exam.model_json_schema(by_alias=True, mode="validation"), "exam")


SKELETON = """\
# A cka-sim scenario (format version 1). Check it with: cka-sim scenario validate FILE
# Editors complete the fields from the JSON Schema: cka-sim scenario schema > scenario.schema.json
schema: 1
id: {id}
title: Back up etcd to a snapshot file
domain: troubleshooting      # cluster-architecture | workloads-scheduling | services-networking | storage | troubleshooting
difficulty: easy             # easy | medium | hard
time_limit: 8m               # 90s, 8m, 1h30m ...

cluster:
  control_planes: 1
  workers: 0
  components: [etcd]         # etcd (required), kube-apiserver, kube-controller-manager, kube-scheduler

# Drawn per attempt from a recorded seed. Write {{{{ name }}}} in the task, hints, setup,
# checks (name and with), explanation, solution and wrong_solutions.
vars:
  backup: {{choice: [etcd-backup, snapshot-daily, etcd-before-upgrade]}}

# Runs in order before the clock starts. Each step does one of:
# apply, snapshot, fault, run, file, record.
setup:
  - file:
      path: /opt/backup/README
      content: |
        Backups of this cluster's etcd go here.
      mode: "0644"
  - record: revision         # etcd's revision now -> state.setup_revision for checkers

task: |
  The etcd member on `controlplane` holds the only copy of this cluster's state.

  Save a snapshot of it to `/opt/backup/{{{{ backup }}}}.db`. Use the certificates in
  `/etc/kubernetes/pki/etcd/` and the endpoint `https://127.0.0.1:2379`.

hints:
  - "`etcdctl snapshot save` needs --cacert, --cert and --key to talk to etcd over TLS."

checks:
  - name: /opt/backup/{{{{ backup }}}}.db is a valid etcd snapshot
    use: snapshot.valid
    with: {{path: "/opt/backup/{{{{ backup }}}}.db"}}
    points: 3
  - name: etcd is still healthy
    use: etcd.healthy
    guard: true              # passes in a fresh cluster on purpose

explanation: |
  A snapshot is taken through the etcd API (`etcdctl snapshot save`); it ends with a
  checksum that `etcdutl snapshot status` and restore verify.

solution: |
  ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \\
    --cacert=/etc/kubernetes/pki/etcd/ca.crt \\
    --cert=/etc/kubernetes/pki/etcd/server.crt \\
    --key=/etc/kubernetes/pki/etcd/server.key \\
    snapshot save /opt/backup/{{{{ backup }}}}.db

wrong_solutions:
  - name: copied the live database file instead of taking a snapshot
    script: cp /var/lib/etcd/member/snap/db /opt/backup/{{{{ backup }}}}.db
    fails: ["/opt/backup/{{{{ backup }}}}.db is a valid etcd snapshot"]

tags: [etcd, backup]
"""


def skeleton(scenario_id: str) -> str:
    """A commented scenario file for ``cka-sim scenario new ID`` that validates as is.

    Raises ScenarioError when ``scenario_id`` is not a valid slug.
    """
    if not re.match(SLUG, scenario_id):
        raise ScenarioError(f"{scenario_id!r} is not a valid scenario id",
                            hint="use 2-63 lowercase letters, digits and dashes, e.g. etcd-backup")
    return SKELETON.format(id=scenario_id)
