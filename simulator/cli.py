"""The command line: a thin face of the session engine.

Every user-caused failure is a SimError, printed as ``error: ...`` and ``hint: ...``
without a traceback (``--debug`` shows it) and a non-zero exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from simulator import __version__, timefmt
from simulator.cli_exam import active_exam, show_status, start_exam, submit_exam
from simulator.cli_exam import exam as exam_group
from simulator.errors import ScenarioError, SimError


class Obj:
    """Options shared by every command."""

    def __init__(self, debug: bool, scenario_dirs: tuple[Path, ...]) -> None:
        self.debug = debug
        self.scenario_dirs = list(scenario_dirs)
        self._catalog = None

    @property
    def catalog(self):
        if self._catalog is None:
            from simulator.catalog import Catalog

            self._catalog = Catalog.load(self.scenario_dirs)
            for problem in self._catalog.problems:
                click.secho(f"warning: skipped {problem}", fg="yellow", err=True)
        return self._catalog


pass_obj = click.make_pass_decorator(Obj)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option("--scenarios", "scenario_dirs", multiple=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Extra directory of scenario files (repeatable; also $CKA_SIM_SCENARIOS).")
@click.version_option(__version__, prog_name="cka-sim")
@click.pass_context
def cli(ctx: click.Context, debug: bool, scenario_dirs: tuple[Path, ...]) -> None:
    """cka-sim: timed, graded CKA tasks on real etcd and real control planes.

    Run without a command to open the terminal UI.
    """
    ctx.obj = Obj(debug, scenario_dirs)
    if ctx.invoked_subcommand is None:
        try:
            from simulator.tui.app import run_app
        except ImportError:
            click.echo(ctx.get_help())
            return
        run_app(ctx.obj.scenario_dirs)


# -- catalog ------------------------------------------------------------------------------


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_obj
def list_cmd(obj: Obj, as_json: bool) -> None:
    """List scenarios along the difficulty path (easy to hard, each after its suggested
    prerequisites), then exams, with your best score."""
    from simulator.history import History

    catalog = obj.catalog
    history = History()
    best = history.best_scores()
    rows = []
    for step, sc in enumerate(catalog.path(), 1):
        score = best.get(sc.id)
        rows.append({
            "kind": "scenario", "id": sc.id, "title": sc.title, "domain": sc.domain,
            "difficulty": sc.difficulty, "time_limit": int(sc.time_limit),
            "step": step, "prerequisites": list(sc.prerequisites),
            "best_score": None if score is None else {
                "score": score[0], "max_score": score[1],
                "percent": round(100.0 * score[0] / score[1], 1) if score[1] else 0.0},
            "attempts": score[2] if score else 0,
        })
    sittings = history.exam_sittings()
    for ex in sorted(catalog.exams.values(), key=lambda e: e.id):
        mine = [s for s in sittings if s.exam == ex.id]
        top = max(mine, key=lambda s: s.percent, default=None)
        rows.append({
            "kind": "exam", "id": ex.id, "title": ex.title, "domain": "exam",
            "difficulty": "exam", "time_limit": int(ex.duration), "pass_mark": ex.pass_mark,
            "tasks": len(ex.tasks) if ex.tasks else ex.sample.count if ex.sample else 0,
            "best_score": None if top is None else {"percent": round(top.percent, 1),
                                                    "passed": top.passed},
            "attempts": len(mine),
        })
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no scenarios found")
        return
    width = max(len(r["id"]) for r in rows)
    click.echo(f"{'#':>2}  {'ID':<{width}}  {'DOMAIN':<20} {'LEVEL':<7} {'TIME':>6}  {'BEST':>5}  TITLE")
    for r in rows:
        b = r["best_score"]
        best_text = f"{b['percent']:.0f}%" if b else "-"
        step = str(r.get("step", ""))
        click.echo(f"{step:>2}  {r['id']:<{width}}  {r['domain']:<20} {r['difficulty']:<7} "
                   f"{timefmt.duration(r['time_limit']):>6}  {best_text:>5}  {r['title']}")
        if r.get("prerequisites"):
            click.echo(f"{'':>2}  {'':<{width}}  after: {', '.join(r['prerequisites'])}")


# -- a session ----------------------------------------------------------------------------


def _progress(step) -> None:
    detail = f": {step.detail}" if step.detail else ""
    click.echo(f"  [{step.name}] {step.done}/{step.total}{detail}", err=True)


@cli.command()
@click.argument("scenario_id")
@click.option("--driver", type=click.Choice(["local", "kind"]), default="local", show_default=True,
              help="local: embedded namespaced nodes; kind: Docker.")
@click.option("--seed", type=int, default=None, help="Seed for the task's variables (repeat an attempt).")
@click.option("--mode", type=click.Choice(["practice", "exam"]), default="practice", show_default=True)
@pass_obj
def start(obj: Obj, scenario_id: str, driver: str, seed: int | None, mode: str) -> None:
    """Start a task: provision a cluster, break it, start the clock. An exam's id starts
    the exam: task 1's cluster first, the others when you switch to them."""
    from simulator.session import Session

    if scenario_id in obj.catalog.exams and scenario_id not in obj.catalog.scenarios:
        start_exam(obj, scenario_id, driver, seed)
        return
    scenario = obj.catalog.get(scenario_id)
    from simulator.session import caveats

    for caveat in caveats(scenario, driver):
        click.secho(f"warning: {caveat}", fg="yellow", err=True)
    click.echo(f"Starting {scenario.id} on the {driver} driver ...", err=True)
    began = time.monotonic()
    session = Session.start(obj.catalog, scenario_id, driver=driver, seed=seed, mode=mode,
                            progress=_progress)
    rendered = session.scenario_model(obj.catalog)
    click.echo(f"Ready in {time.monotonic() - began:.1f}s.", err=True)
    click.echo("")
    click.secho(f"{rendered.title}", bold=True)
    click.echo(f"{rendered.domain} · {rendered.difficulty} · time limit "
               f"{timefmt.duration(rendered.time_limit)} · {mode} mode")
    click.echo("")
    click.echo(rendered.task.rstrip())
    click.echo("")
    click.echo("Open a shell on the node with `cka-sim shell`; "
               "grade with `cka-sim check` (practice) or `cka-sim submit`.")


@cli.command()
@click.option("--node", "node_name", default=None, help="Node to enter (default: the first control plane, or the jump host student).")
@click.option("-c", "command", default=None, help="Run COMMAND like `bash -lc` and exit with its status.")
@pass_obj
def shell(obj: Obj, node_name: str | None, command: str | None) -> None:
    """A root login shell on the active session's node (in an exam: the current task's); a
    task with a jump host opens candidate's shell on student."""
    from simulator.cluster.node import login_node
    from simulator.session import Session

    exam = active_exam(obj)
    if exam is not None:
        argv = exam.shell_argv(exam.current, node_name)
    else:
        session = Session.require()
        if session.status == "provisioning":
            session.require_running()
        if session.mode == "exam" and session.expired():
            session.require_running()
        cluster = session.cluster()
        node = cluster.node(node_name) if node_name else login_node(cluster)
        argv = node.shell_argv()
    if command is not None:
        sys.exit(subprocess.run([*argv, "-c", command]).returncode)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def _print_report(report, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    for r in report.results:
        mark = click.style("PASS", fg="green") if r.passed else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {r.points}/{r.max_points}  {r.name}")
        if r.detail:
            click.echo(f"              {r.detail}")
    status = "final" if report.final else "so far"
    over = f", {timefmt.duration(report.overtime)} over the limit" if report.overtime > 0 else ""
    click.echo(f"Score ({status}): {report.score}/{report.max_score} ({report.percent:.0f}%) "
               f"in {timefmt.duration(report.time_used)} of {timefmt.duration(report.time_limit)}{over}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_obj
def check(obj: Obj, as_json: bool) -> None:
    """Grade the current state; the clock keeps running (practice mode)."""
    from simulator.session import Session

    if active_exam(obj) is not None:
        raise SimError("checking is off in an exam",
                       hint="as on the exam, you see the score after `cka-sim submit`")
    _print_report(Session.require().check(obj.catalog), as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_obj
def submit(obj: Obj, as_json: bool) -> None:
    """Final grading: stop the clock and record the attempt."""
    from simulator.session import Session

    exam = active_exam(obj)
    if exam is not None:
        submit_exam(exam, as_json)
        return
    session = Session.require()
    report = session.submit(obj.catalog)
    _print_report(report, as_json)
    if not as_json:
        scenario = session.scenario_model(obj.catalog)
        if scenario.explanation:
            click.echo("")
            click.secho("Why it broke", bold=True)
            click.echo(scenario.explanation.rstrip())
        click.echo("\nThe cluster is still up for a look; `cka-sim stop` removes it.")


@cli.command()
@pass_obj
def hint(obj: Obj) -> None:
    """Reveal the next hint (practice mode; counted in your history)."""
    from simulator.session import Session

    if active_exam(obj) is not None:
        raise SimError("hints are off in an exam", hint="practise the task alone with `cka-sim start ID`")
    number, text = Session.require().next_hint(obj.catalog)
    click.echo(f"Hint {number}: {text}")


@cli.command()
@pass_obj
def stop(obj: Obj) -> None:
    """Remove the active session's cluster (an exam's: every task's): processes, mounts, files."""
    from simulator.session import session_lock, stop_active

    exam = active_exam(obj)
    if exam is not None:
        with session_lock():
            exam.discard()
        click.echo(f"stopped the exam {exam.exam.id}"
                   + ("" if exam.report else " (not graded, nothing recorded)"))
        return
    click.echo("stopped" if stop_active() else "no session was active")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_obj
def status(obj: Obj, as_json: bool) -> None:
    """The active session and its clock (an exam: `cka-sim exam status`)."""
    from simulator.session import Session

    exam = active_exam(obj)
    if exam is not None:
        show_status(exam, as_json)
        return
    session = Session.load()
    if as_json:
        emit_json(session.status_json() if session else None)
        return
    if session is None:
        click.echo("no session is active (`cka-sim start ID`)")
        return
    click.echo(f"{session.scenario}: {session.status}, {session.mode} mode, "
               f"{session.driver} driver, cluster {session.cluster_name}")
    if session.status == "running":
        left = session.remaining()
        label = "time left" if left >= 0 else "overtime"
        click.echo(f"{label}: {timefmt.clock(left)} of {timefmt.duration(session.time_limit)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--scenario", default=None, help="Only attempts at this scenario.")
@click.option("--limit", type=int, default=None)
@click.option("--domains", "view", flag_value="domains",
              help="Only the progress per curriculum domain (best and average percent).")
@click.option("--exams", "view", flag_value="exams", help="Only finished exams and their verdicts.")
def history(as_json: bool, scenario: str | None, limit: int | None, view: str | None) -> None:
    """Your past attempts (newest first), progress per domain and finished exams."""
    from simulator.history import History, domain_progress

    store = History()
    attempts = store.attempts(scenario, limit)
    if view == "domains":
        progress = domain_progress(store.attempts(scenario))
        if as_json:
            emit_json([d.to_json() for d in progress])
        else:
            _print_domains(progress)
        return
    if view == "exams":
        sittings = store.exam_sittings()[:limit] if limit else store.exam_sittings()
        if as_json:
            emit_json([x.to_json() for x in sittings])
        else:
            _print_sittings(sittings)
        return
    if as_json:
        emit_json([a.to_json() for a in attempts])
        return
    if not attempts:
        click.echo("no attempts yet")
        return
    for a in attempts:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(a.started_at))
        click.echo(f"{when}  {a.scenario:<32} {a.mode:<8} {a.score:>3}/{a.max_score:<3} "
                   f"({a.percent:3.0f}%)  {timefmt.duration(a.time_used)} of {timefmt.duration(a.time_limit)}"
                   + (f"  exam {a.exam}" if a.exam else ""))
    click.echo("")
    _print_domains(domain_progress(store.attempts(scenario)))
    sittings = store.exam_sittings()
    if sittings and not scenario:
        click.echo("")
        _print_sittings(sittings)


def _print_domains(progress) -> None:
    if not progress:
        click.echo("no attempts yet")
        return
    click.secho("By domain", bold=True)
    click.echo(f"  {'DOMAIN':<22} {'TRIES':>5} {'TASKS':>5} {'BEST':>5} {'AVERAGE':>7}")
    for d in progress:
        click.echo(f"  {d.domain:<22} {d.attempts:>5} {d.scenarios:>5} {d.best:>4.0f}% {d.average:>6.0f}%")


def _print_sittings(sittings) -> None:
    if not sittings:
        click.echo("no exams finished yet")
        return
    click.secho("Exams", bold=True)
    for x in sittings:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(x.started_at))
        verdict = click.style("PASSED", fg="green") if x.passed else click.style("NOT PASSED", fg="red")
        click.echo(f"  {when}  {x.exam:<24} {x.percent:5.1f}% of 100 (pass mark {x.pass_mark}%)  "
                   f"{verdict}  {len(x.tasks)} tasks in {timefmt.duration(x.time_used)} "
                   f"of {timefmt.duration(x.duration)}")


# -- scenario authoring --------------------------------------------------------------------


@cli.group()
def scenario() -> None:
    """Write, validate and test scenario files."""


@scenario.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_obj
def scenario_validate(obj: Obj, files: tuple[Path, ...]) -> None:
    """Report every problem of scenario or exam FILES as FILE:LINE:COLUMN."""
    from simulator.scenario import Problem, Scenario, did_you_mean, load_file, locate, validate_file
    from simulator.session import ensure_checker_names

    bad = 0
    valid = {path: load_file(path) for path in files if not validate_file(path)}
    known: set[str] | None = None
    for path in files:
        problems = [str(p) for p in validate_file(path)]
        model = valid.get(path)
        if isinstance(model, Scenario):
            problems = [f"{path}: {p}" for p in ensure_checker_names(model)]
            if model.prerequisites and known is None:  # the catalog only when needed
                known = set(obj.catalog.scenarios) | {m.id for m in valid.values()}
            for i, before in enumerate(model.prerequisites):
                if before not in (known or ()):
                    line, column = locate(path, ("prerequisites", i))
                    problems.append(str(Problem(str(path), line, column, f"prerequisites[{i}]",
                                                f"no scenario has the id {before!r}"
                                                + did_you_mean(before, known or ()))))
        if problems:
            bad += 1
            for line in problems:
                click.echo(line, err=True)
        else:
            click.echo(f"{path}: ok")
    if bad:
        raise SystemExit(1)


@scenario.command("schema")
@click.option("--exam", is_flag=True, help="The schema of exam files instead.")
def scenario_schema(exam: bool) -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    from simulator import scenario as sc

    emit_json(sc.exam_json_schema() if exam else sc.json_schema())


@scenario.command("new")
@click.argument("scenario_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="File to write (default: ID.yaml; '-' for standard output).")
def scenario_new(scenario_id: str, output: Path | None) -> None:
    """Write a commented skeleton for a new scenario that validates as is."""
    from simulator.scenario import skeleton

    text = skeleton(scenario_id)
    if output is not None and str(output) == "-":
        click.echo(text, nl=False)
        return
    target = output or Path(f"{scenario_id}.yaml")
    if target.exists():
        raise SimError(f"{target} already exists", hint="choose another name with -o, or remove it")
    target.write_text(text)
    click.echo(f"wrote {target}")


@scenario.command("test")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every scenario in the catalog.")
@click.option("--driver", type=click.Choice(["local", "kind"]), default="local", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the scenarios' variables (try several to cover every value).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Attempts played at once, each on its own fresh cluster "
                   "[default: CKA_SIM_GATE_JOBS, else 3 embedded, 2 on kind].")
@click.option("--json", "as_json", is_flag=True)
@pass_obj
def scenario_test(obj: Obj, ids: tuple[str, ...], all_: bool, driver: str, seed: int,
                  jobs: int | None, as_json: bool) -> None:
    """Quality gate: fresh cluster scores 0, the solution full marks, wrong solutions lose
    exactly the checks they name."""
    from simulator.gate import run_gate

    if not ids and not all_:
        raise SimError("name scenarios to test, or --all", hint="cka-sim scenario test etcd-backup")
    targets = sorted(obj.catalog.scenarios) if all_ else list(ids)
    from simulator.session import caveats

    for target in targets:  # a solution's ssh would fail without a word otherwise
        for caveat in caveats(obj.catalog.get(target), driver):
            click.secho(f"warning: {target}: {caveat}", fg="yellow", err=True)
    began = time.monotonic()

    def progress(line: str) -> None:  # the elapsed time shows which attempts are slow
        click.echo(f"[{time.monotonic() - began:5.0f}s] {line}", err=True)

    results = run_gate(obj.catalog, targets, driver=driver, seed=seed, progress=progress, jobs=jobs)
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            mark = click.style("PASS", fg="green") if r.passed else click.style("FAIL", fg="red")
            click.echo(f"{mark}  {r.scenario:<34} {r.seconds:6.1f}s")
            for problem in r.problems:
                click.echo(f"        {problem}")
    if not all(r.passed for r in results):
        raise SystemExit(1)


cli.add_command(exam_group)


# -- the machine ----------------------------------------------------------------------------


@cli.command()
@click.option("--clean", is_flag=True, help="Remove clusters left behind by a killed cka-sim.")
def doctor(clean: bool) -> None:
    """What this machine supports, and what to install for what is missing."""
    from simulator.doctor import clean_leftovers, report

    failed = 0
    for name, ok, detail in report():
        mark = click.style(" ok ", fg="green") if ok else click.style("miss", fg="yellow")
        click.echo(f"[{mark}] {name}: {detail}")
        failed += 0 if ok else 1
    if clean:
        removed = clean_leftovers()
        click.echo("\n".join(f"removed {r}" for r in removed) or "nothing to clean")


@cli.command()
@click.option("--all", "all_", is_flag=True, help="Also the control-plane binaries (kube-apiserver, ...).")
@click.option("--driver", type=click.Choice(["local", "kind"]), default="local", show_default=True,
              help="The driver to fetch them for.")
def setup(all_: bool, driver: str) -> None:
    """Fetch the binaries practice clusters need (etcd, and with --all Kubernetes)."""
    from simulator.doctor import setup as fetch

    found = fetch(driver, _progress, everything=all_)
    for name, path in found.items():
        click.echo(f"{name}: {path}")


# -- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; SimErrors become a message and a hint, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="cka-sim", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ScenarioError as exc:
        if debug:
            raise
        click.secho(f"error: {exc.message}", fg="red", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except SimError as exc:
        if debug:
            raise
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        click.secho(f"internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
        click.echo("hint: rerun with --debug for the traceback and report it", err=True)
        sys.exit(70)
