"""Handing the terminal to a shell on a node and taking it back, for every screen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from textual.app import SuspendNotSupported

if TYPE_CHECKING:
    from textual.app import App


def take_back_terminal() -> None:
    """Make this process the terminal's foreground process group again.

    A job-control shell in the node's pid namespace cannot see our process group, so it
    cannot hand the terminal back when it exits; without this the app could neither read
    keys nor draw.
    """
    for stream in (sys.__stdin__, sys.__stdout__):
        if stream is None or not stream.isatty():
            continue
        fd = stream.fileno()
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                os.tcsetpgrp(fd, os.getpgrp())
        finally:
            signal.signal(signal.SIGTTOU, previous)
        return


def run_shell(app: App, argv: list[str], banner: str) -> str | None:
    """Hand the terminal to ``argv`` until it exits; returns an error text or None.

    Nothing may escape the suspended block (the app would hang), so every error is caught
    inside it and reported afterwards.
    """
    error: str | None = None
    try:
        with app.suspend():
            try:
                sys.stdout.write(f"\x1b[2J\x1b[H{banner}\n")
                sys.stdout.flush()
                subprocess.run(argv, check=False)
            except BaseException as exc:
                error = f"the shell failed: {type(exc).__name__}: {exc}"
            try:
                take_back_terminal()
            except OSError as exc:
                error = error or f"could not take the terminal back: {exc}"
    except SuspendNotSupported:
        error = "this terminal cannot hand over to a shell; run `cka-sim shell` in another terminal"
    return error
