"""Faults on files in a node."""

from __future__ import annotations

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
