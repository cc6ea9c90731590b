"""Typed models of scenario and exam files.

A scenario file is one task (``kind: scenario``, the default); an exam file (``kind: exam``)
names or samples scenarios under one clock.

Why one module of ~700 lines: the models are one schema whose validators read each other
(checks name vars and other checks, wrong solutions name checks, solutions name the
cluster's nodes, exams name scenarios), and the JSON schema and the error locations come
from walking that one tree; split, each part would import the rest.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Protocol, Union, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from simulator.cluster.node import JUMP_HOST, ClusterSpec
from simulator.errors import CatalogError
from simulator.scenario.fieldtypes import Duration, FileMode
from simulator.scenario.problems import FieldProblems, did_you_mean
from simulator.scenario.templating import (
    EXPRESSION,
    NODE_MARK,
    PLACEHOLDER,
    RESERVED_NAMES,
    SAFE_WORD,
    TEMPLATED_FIELDS,
    draw_vars,
    is_script,
    is_templated,
    placeholders,
    render,
    strings_at,
)

SCHEMA_VERSION = 1

ATTACKS: dict[str, str] = {
    "empty-data-dir": "the etcd-data hostPath pointed at an empty directory with a member/ folder, no restore",
    "db-copy": "a raw copy of /var/lib/etcd/member/snap/db where a snapshot is expected",
    "solution-prefix": "the reference solution without its last step (its last paragraph)",
}
Attack = Literal["empty-data-dir", "db-copy", "solution-prefix"]

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
FULL_CONTROL_PLANE: tuple[str, ...] = get_args(Component)
"""What ``kubeadm init`` runs on a control plane, in start order: a scenario's default."""

SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"
VAR_NAME = r"^[a-z_][a-z0-9_]*$"
# Checker names are dotted (snapshot.valid) except the instructors' plain ``script``.
DOTTED = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$"
FAULT_NAME = r"^[a-z][a-z0-9_.-]*$"
# An absolute path, or one that starts with a var whose values are absolute paths.
ABSOLUTE_PATH = r"^(/|\{\{\s*[a-z_][a-z0-9_]*\s*\}\})"

# setup step action -> what ``record:`` stores in the attempt state.
RECORDS = {"revision": "setup_revision"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _schema_version(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise PydanticCustomError(
            "schema_version",
            "unsupported format version {value}; this cka-sim reads version {known}",
            {"value": value, "known": SCHEMA_VERSION})
    return value


class ClusterReq(_Model):
    """The practice cluster the scenario needs."""

    control_planes: int = Field(1, ge=1, le=3, description="Number of control-plane nodes (1-3): controlplane, controlplane2, ...")
    workers: int = Field(1, ge=0, le=3, description=(
        "Number of worker nodes (0-3): node01, node02, ...; one by default, as the exam's "
        "clusters have"))
    components: list[Component] = Field(
        default_factory=lambda: list(FULL_CONTROL_PLANE),
        description="Control-plane components to run as static pods, as kubeadm does: by "
                    "default all four; etcd is always required. `[etcd]` alone is a bare "
                    "etcd without an API server, for authors' experiments.")
    jump_host: bool = Field(False, description=(
        "Start the learner on a jump host, node `student` (the exam's base node, no Kubernetes "
        "node) as user `candidate`, who must `ssh controlplane` and `sudo -i` there. Solutions "
        "reach it with `# on node student`."))
    etcd: Literal["static-pod", "systemd"] = Field(
        "static-pod",
        description="How the control plane runs etcd: as kubeadm's static pod (the default) or "
                    "as a systemd service, /etc/systemd/system/etcd.service (an external etcd, "
                    "on the same data directory, certificates and URLs; the API server's "
                    "--etcd-servers points at it). systemd needs one control plane.")

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

    @model_validator(mode="after")
    def _etcd_mode(self) -> ClusterReq:
        if self.etcd == "systemd" and self.control_planes != 1:
            raise PydanticCustomError(
                "etcd", "etcd: systemd runs one etcd.service on controlplane; set control_planes: 1",
                {})
        return self

    def node_names(self) -> list[str]:
        """Node names as on the exam: controlplane, controlplane2, ..., node01, ..."""
        return [n.name for n in self.to_spec("x").node_specs()]

    def to_spec(self, name: str) -> ClusterSpec:
        """The driver-facing cluster spec, components in start order."""
        order = get_args(Component)
        components = tuple(sorted(self.components, key=order.index))
        return ClusterSpec(name=name, control_planes=self.control_planes, workers=self.workers,
                           components=components, jump_host=self.jump_host, etcd=self.etcd)


Scalar = str | int | float | bool


class VarSpec(_Model):
    """How a var gets its value per attempt: exactly one of choice, range, value (drawn from
    the attempt's seed) or node_ip (read from the attempt's cluster once it is up)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["choice"]}, {"required": ["range"]}, {"required": ["value"]},
        {"required": ["node_ip"]}]})

    choice: list[Scalar] | None = Field(None, min_length=1, description="Pick one of these values at random.")
    range: tuple[int, int] | None = Field(None, description="Pick a whole number from lo to hi inclusive: [lo, hi].")
    value: Scalar | None = Field(None, description="Always this value.")
    node_ip: str | None = Field(None, min_length=1, description=(
        "The address of this node (e.g. controlplane) in the attempt's cluster, as its /etc/hosts "
        "lists it; known once the cluster is up, e.g. for an endpoint https://{{ name }}:2379."))

    @model_validator(mode="after")
    def _exactly_one(self) -> VarSpec:
        given = [k for k in ("choice", "range", "value", "node_ip") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "var_spec", "a var needs exactly one of choice, range, value or node_ip, got {got}",
                {"got": ", ".join(given) or "none"})
        if self.range is not None and self.range[0] > self.range[1]:
            raise PydanticCustomError("var_spec", "range [lo, hi] needs lo <= hi, got {got}",
                                      {"got": list(self.range)})
        return self

    @property
    def from_cluster(self) -> bool:
        """Whether the value is read from the cluster (after provisioning), not drawn."""
        return self.node_ip is not None

    def values(self) -> list[Scalar]:
        """Every value this var can take (a range lists its bounds only; a value read from
        the cluster, none: an address is always a plain word)."""
        if self.choice is not None:
            return list(self.choice)
        if self.range is not None:
            return list(self.range)
        if self.node_ip is not None:
            return []
        return [self.value]  # type: ignore[list-item]

    def draw(self, rng: random.Random) -> Scalar:
        """One value, drawn with ``rng`` (not for a var read from the cluster)."""
        if self.choice is not None:
            return rng.choice(self.choice)
        if self.range is not None:
            return rng.randint(*self.range)
        assert self.node_ip is None, "a node_ip var is read from the cluster, not drawn"
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

    path: str = Field(pattern=ABSOLUTE_PATH, description="Absolute path on the node for the snapshot file.")


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

    path: str = Field(pattern=ABSOLUTE_PATH, description="Absolute path; parent directories are created.")
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
STEP_TAGS = {cls.__name__: cls for cls in SETUP_ACTIONS.values()}


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
    node: str | None = Field(None, description="Node to check on (default: the first control plane).")
    guard: bool = Field(False, description="A condition, not an achievement: it passes in a fresh environment on "
                                           "purpose (e.g. 'the cluster still works'), is worth no points, and the "
                                           "gate requires it to hold before and after the reference solution.")
    points: int = Field(1, ge=0, description="Points earned when the check passes (partial credit); "
                                             "at least 1, and none on a guard.")
    requires: list[str] = Field(default_factory=list, description=(
        "Names of earlier checks this one depends on: it counts only when they all pass "
        "(e.g. 'the namespace created after the backup is gone' requires 'etcd serves the restored data', "
        "so an empty etcd earns nothing for it)."))

    @field_validator("points")
    @classmethod
    def _points(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("guard"):
            if value != 0:
                raise PydanticCustomError("guard_points", "a guard is a condition worth no points: remove "
                                          "`points` (or make it an earned check without `guard`)")
        elif value < 1:
            raise PydanticCustomError("points", "expected a number >= 1, got {value} (a condition worth "
                                      "no points is a `guard`)", {"value": value})
        return value

    @model_validator(mode="after")
    def _guard_points(self) -> Check:
        if self.guard:
            self.points = 0
        return self


class Alternative(_Model):
    """Another correct way to do the task; the quality gate asserts it earns full marks."""

    name: str = Field(min_length=1, description="What this way does differently.")
    script: str = Field(min_length=1, description="Bash script (same `# on node NAME` sections as solution).")


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
    alternatives: list[Alternative] = Field(default_factory=list, description=(
        "Other correct ways to do the task (another tool, another file); each must score full marks."))
    wrong_solutions: list[WrongSolution] = Field(default_factory=list, description="Plausible mistakes and the checks each must fail.")
    exempt_attacks: dict[Attack, Annotated[str, Field(min_length=10)]] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False},
        description=("Built-in attacks of the quality gate this scenario is exempt from, each with the reason: "
                     + "; ".join(f"{k} ({v})" for k, v in ATTACKS.items()) + ". Doing nothing is never exempt."))
    tags: list[str] = Field(default_factory=list, description="Free-form labels for filtering.")
    prerequisites: list[Annotated[str, Field(pattern=SLUG)]] = Field(
        default_factory=list,
        description=("Ids of scenarios to do before this one (the catalog's difficulty path); "
                     "each must exist in the catalog."))

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
            raise FieldProblems(problems)
        return self

    @property
    def cluster_vars(self) -> dict[str, str]:
        """The vars read from the cluster once it is up: var name -> node name (node_ip)."""
        return {name: spec.node_ip for name, spec in self.vars.items() if spec.node_ip is not None}

    def instantiate(self, seed: int, known: Mapping[str, Any] | None = None) -> Instance:
        """This scenario with vars drawn from ``seed`` substituted everywhere they may appear.

        Returns ``(scenario, values)``; the same seed always gives the same values. Vars read
        from the cluster take their value from ``known`` (e.g. an attempt's recorded values);
        without one they stay ``{{ name }}`` until :meth:`bind` is given it.
        """
        values = draw_vars(self, seed)
        values.update({k: v for k, v in (known or {}).items() if k in self.cluster_vars})
        rendered = self._rendered(values)
        rendered._source = self._source
        return Instance(rendered, values)

    def bind(self, values: Mapping[str, Any]) -> None:
        """Substitute, in place, the vars read from the cluster that ``values`` now holds
        (this scenario is an instantiated one: drawn vars are already substituted)."""
        pending = [n for n in self.cluster_vars if n in values]
        if not pending:
            return
        bound = self._rendered(values)
        for field in TEMPLATED_FIELDS:
            setattr(self, field, getattr(bound, field))

    def _rendered(self, values: Mapping[str, Any]) -> Scenario:
        keep = {n: f"{{{{ {n} }}}}" for n in self.cluster_vars if n not in values}
        values = {**values, **keep}
        data = self.model_dump(by_alias=True)
        for field in TEMPLATED_FIELDS:
            if field == "checks":
                for check in data["checks"]:
                    check["name"] = render(check["name"], values)
                    check["requires"] = render(check["requires"], values)
                    check["with"] = render(check["with"], values)
            else:
                data[field] = render(data[field], values)
        return Scenario.model_validate(data, context={"rendered": True})


class Instance(NamedTuple):
    """A scenario with its drawn values substituted, and those values."""

    scenario: Scenario
    values: dict[str, Any]


class ScenarioSource(Protocol):
    """Where an exam finds its scenarios by id (a :class:`simulator.catalog.Catalog`)."""

    @property
    def scenarios(self) -> Mapping[str, Scenario]: ...


class ExamSample(_Model):
    """Draw scenarios at random instead of naming them."""

    count: int = Field(ge=1, description="How many scenarios to draw.")
    domains: list[Domain] | None = Field(None, min_length=1, description="Draw only from these domains, spread evenly (default: all).")
    seed: int | None = Field(None, description="Fixed seed: the same exam every time (default: a new draw per attempt).")


def _task_ref(value: Any) -> Any:
    """A task given as a bare scenario id is a task without a weight."""
    return {"scenario": value} if isinstance(value, str) else value


class ExamTaskRef(_Model):
    """One task of an exam: a scenario id and, optionally, its weight in percent."""

    scenario: str = Field(min_length=1, description="The scenario's id.")
    weight: int | None = Field(None, ge=1, le=100, description=(
        "Percent of the exam this task is worth (the CKA weighs tasks 4-8 %); give every task a "
        "weight or none, and weights must add up to 100. Without weights a task is worth its points."))


TASK_ITEM_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "string", "minLength": 1, "description": "A scenario id (the task is worth its points)."},
    {"type": "object", "additionalProperties": False, "required": ["scenario"],
     "properties": {
         "scenario": {"type": "string", "minLength": 1, "description": "The scenario's id."},
         "weight": {"type": "integer", "minimum": 1, "maximum": 100,
                    "description": ExamTaskRef.model_fields["weight"].description}}},
]}


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
    tasks: list[Annotated[ExamTaskRef, BeforeValidator(_task_ref), WithJsonSchema(TASK_ITEM_SCHEMA)]] | None = Field(
        None, min_length=1,
        description=("The tasks in order: scenario ids, or {scenario: ID, weight: PERCENT} with weights "
                     "adding up to 100. Give tasks or sample, not both."))
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
            raise FieldProblems([((), "an exam needs exactly one of tasks (a list of scenario ids) or sample")])
        if self.tasks is not None:
            seen: set[str] = set()
            problems = [(("tasks", i), f"scenario {t!r} is listed twice")
                        for i, t in enumerate(self.task_ids) if t in seen or seen.add(t)]  # type: ignore[func-returns-value]
            weighted = [i for i, t in enumerate(self.tasks) if t.weight is not None]
            if weighted and len(weighted) < len(self.tasks):
                first = weighted[0]
                problems += [(("tasks", i), f"this task has no weight but tasks[{first}] has one: "
                                            "give every task a weight, or none")
                             for i, t in enumerate(self.tasks) if t.weight is None]
            elif weighted:
                total = sum(t.weight or 0 for t in self.tasks)
                if total != 100:
                    problems.append((("tasks",), f"the weights add up to {total}; they must add up to 100 "
                                                 "(percent of the exam)"))
            if problems:
                raise FieldProblems(problems)
        return self

    @property
    def task_ids(self) -> list[str]:
        """The named tasks' scenario ids, in order (empty for a sampled exam)."""
        return [t.scenario for t in self.tasks or []]

    @property
    def weights(self) -> dict[str, int] | None:
        """Scenario id -> weight in percent when the exam file gives weights, else None."""
        if not self.tasks or self.tasks[0].weight is None:
            return None
        return {t.scenario: t.weight or 0 for t in self.tasks}

    def resolve(self, catalog: ScenarioSource, rng: random.Random) -> list[Scenario]:
        """The exam's scenarios: the named tasks in order, or a draw spread over the domains.

        ``sample.seed`` (if set) replaces ``rng``. Raises CatalogError for unknown ids or
        when the catalog holds too few scenarios to draw from.
        """
        if self.tasks is not None:
            unknown = [t for t in self.task_ids if t not in catalog.scenarios]
            if unknown:
                raise CatalogError(f"exam {self.id!r} names unknown scenario(s): {', '.join(unknown)}",
                                   hint="check the ids with `cka-sim list`")
            return [catalog.scenarios[t] for t in self.task_ids]
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



def _scenario_problems(sc: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: set[str] = set()
    for i, before in enumerate(sc.prerequisites):
        if before == sc.id:
            problems.append((("prerequisites", i), "a scenario cannot be its own prerequisite"))
        elif before in seen:
            problems.append((("prerequisites", i), f"{before!r} is listed twice"))
        seen.add(before)
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
    for i, check in enumerate(sc.checks):
        for j, name in enumerate(check.requires):
            if name not in names or names[name] >= i:
                problems.append((("checks", i, "requires", j),
                                 f"no earlier check is named {name!r}: a check can require only checks "
                                 "listed before it" + did_you_mean(name, [c.name for c in sc.checks[:i]])))
    for i, wrong in enumerate(sc.wrong_solutions):
        for j, name in enumerate(wrong.fails):
            if name not in names:
                problems.append((("wrong_solutions", i, "fails", j),
                                 f"no check is named {name!r}" + did_you_mean(name, names)))

    nodes = sc.cluster.node_names()

    def no_node(node: str) -> str:
        if node == JUMP_HOST:
            return (f"no node {node!r} in this cluster: the jump host needs `jump_host: true` "
                    "under cluster")
        return f"no node {node!r} in this cluster; nodes: {', '.join(nodes)}" + did_you_mean(node, nodes)

    for name, node in sc.cluster_vars.items():
        if node not in nodes:
            problems.append((("vars", name, "node_ip"), no_node(node)))
    for field, items in (("setup", sc.setup), ("checks", sc.checks)):
        for i, item in enumerate(items):
            if item.node is not None and item.node not in nodes:
                problems.append(((field, i, "node"), no_node(item.node)))
    for loc, script in [(("solution",), sc.solution),
                        *[(("alternatives", i, "script"), a.script) for i, a in enumerate(sc.alternatives)],
                        *[(("wrong_solutions", i, "script"), w.script) for i, w in enumerate(sc.wrong_solutions)]]:
        for mark in (m for m in NODE_MARK.finditer(script or "") if m.group(1) not in nodes):
            problems.append((loc, f"`{mark.group(0).strip()}`: " + no_node(mark.group(1))))
    for i, step in enumerate(sc.setup):
        if isinstance(step, SnapshotStep | FileStep):
            field, path = ("snapshot", step.snapshot.path) if isinstance(step, SnapshotStep) else ("file", step.file.path)
            lead = PLACEHOLDER.match(path)
            spec = sc.vars.get(lead.group(1)) if lead else None
            bad = [v for v in spec.values() if not str(v).startswith("/")] if spec else []
            if bad:
                problems.append((("setup", i, field, "path"),
                                 f"the path starts with {{{{ {lead.group(1)} }}}}, so each of its values "  # type: ignore[union-attr]
                                 f"must be an absolute path; {str(bad[0])!r} is not"))
    if "kube-apiserver" not in sc.cluster.components:
        for i, step in enumerate(sc.setup):
            if isinstance(step, ApplyStep):
                problems.append((("setup", i, "apply"),
                                 "apply needs kube-apiserver in cluster.components"))

    data = sc.model_dump(by_alias=True)
    for key in ("vars", "schema", "kind", "cluster"):
        data.pop(key, None)
    unsafe: set[str] = set()
    for loc, text in strings_at(data, ()):
        for match in EXPRESSION.finditer(text):
            problems.append((loc, (f"{match.group(0)}...}}}} is not allowed: templates hold a plain "
                                   "{{ name }}, no filters, attributes or calls")))
        used = placeholders(text)
        if not used:
            continue
        if _runs_in_shell(sc, loc):
            problems.append((loc, (f"{{{{ {used[0]} }}}} would be spliced into a script cka-sim runs; "
                                   f"pass the value in `env:` (e.g. env: {{{used[0].upper()}: \"{{{{ {used[0]} }}}}\"}}) "
                                   f"and use \"${used[0].upper()}\" in the script")))
            continue
        if not is_templated(loc):
            problems.append((loc, (f"{{{{ {used[0]} }}}} is not substituted in this field; vars go in "
                                   "task, hints, setup, checks (name, with, requires), explanation, solution, "
                                   "alternatives and wrong_solutions")))
            continue
        for name in used:
            if name not in sc.vars:
                problems.append((loc, f"{{{{ {name} }}}} is not defined in vars"
                                      + did_you_mean(name, sc.vars)))
            elif is_script(loc) and name not in unsafe:
                bad = [v for v in sc.vars[name].values() if not SAFE_WORD.match(str(v))]
                if bad:
                    unsafe.add(name)
                    problems.append((("vars", name),
                                     (f"var {name!r} is inserted into a bash script, so each value must "
                                      f"be a plain word (letters, digits, . _ - / : @ + = ,); "
                                      f"{str(bad[0])!r} is not")))
    return problems


def _runs_in_shell(sc: Scenario, loc: tuple[str | int, ...]) -> bool:
    """Whether ``loc`` is a script cka-sim itself runs (a setup step's ``run``, a ``script``
    check's ``run``): values reach those through ``env``, never inside the text."""
    if loc[0] == "setup" and loc[2:] == ("run",):
        return True
    return (loc[0] == "checks" and loc[2:] == ("with", "run") and isinstance(loc[1], int)
            and sc.checks[loc[1]].use == "script")
