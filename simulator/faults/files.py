"""Faults on files in a node."""

from __future__ import annotations

import posixpath

from simulator.errors import CheckError
from simulator.registry import Context, fault


@fault("files.chmod")
def chmod(ctx: Context, path: str, mode: str | int) -> None:
    """Change the mode of ``path`` (octal string like "0777" or an int)."""
    mode_text = mode if isinstance(mode, str) else format(mode, "o")
    ctx.run(["chmod", mode_text, path]).check()


@fault("files.chown")
def chown(ctx: Context, path: str, owner: str) -> None:
    """Change the owner of ``path`` (``user`` or ``user:group``)."""
    ctx.run(["chown", owner, path]).check()


@fault("files.remove")
def remove(ctx: Context, path: str) -> None:
    """Delete ``path`` (recursively for a directory)."""
    ctx.run(["rm", "-rf", "--", path]).check()


@fault("files.copy")
def copy(ctx: Context, path: str, from_node: str, to: str | None = None,
         mode: str | int = "0600") -> None:
    """Copy ``path`` from node ``from_node`` onto the step's node (at ``to``, by default
    the same path), creating its parent directories; as if it had been copied with scp."""
    try:
        data = ctx.cluster.node(from_node).read_file(path)
    except FileNotFoundError:
        raise CheckError(f"files.copy: {path} does not exist on {from_node}",
                         hint="create it first in an earlier setup step on that node") from None
    try:
        bits = int(mode, 8) if isinstance(mode, str) else int(mode)
    except ValueError:
        raise CheckError(f"files.copy: mode must be octal like \"0644\", got {mode!r}",
                         hint="mode: \"0600\"") from None
    dest = to or path
    ctx.run(["mkdir", "-p", posixpath.dirname(dest) or "/"]).check()
    ctx.node.write_file(dest, data, bits)
