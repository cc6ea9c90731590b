"""The ``script`` checker: an instructor's bash snippet run on the node decides."""

from __future__ import annotations

from typing import Any

from simulator.errors import ClusterError
from simulator.registry import CheckResult, Context, checker

_TAIL_LINES = 8
_TAIL_CHARS = 800


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()][-_TAIL_LINES:]
    out = "\n".join(lines)
    return out if len(out) <= _TAIL_CHARS else "..." + out[-_TAIL_CHARS:]


@checker("script")
def script(ctx: Context, run: str, env: dict[str, Any] | None = None, timeout: float = 60) -> CheckResult:
    """Run ``run`` with ``bash -c`` on the node; exit status 0 passes.

    ``env`` values reach the script as environment variables (never spliced into the text).
    The detail is the last lines of what the script printed.
    """
    variables = {str(k): str(v) for k, v in (env or {}).items()}
    try:
        done = ctx.node.run(["bash", "-c", run], env=variables, timeout=timeout)
    except ClusterError as exc:
        return CheckResult(False, f"the check script did not finish: {exc.message}")
    output = _tail(done.out + ("\n" if done.out and done.err else "") + done.err)
    if done.ok:
        return CheckResult(True, output or "the check script succeeded")
    suffix = f": {output}" if output else " and printed nothing"
    return CheckResult(False, f"the check script failed with exit code {done.returncode}{suffix}")
