"""On/off settings read from the environment (``CKA_SIM_STANDBY=0``,
``CKA_SIM_GATE_FRESH=1``), all spelled and refused the same way."""

from __future__ import annotations

import os

from simulator.errors import SimError

ON = ("1", "yes", "true", "on")
OFF = ("0", "no", "false", "off")


def env_flag(name: str, default: bool) -> bool:
    """The setting ``name``: ``default`` when unset or empty, else on (1, yes, true, on)
    or off (0, no, false, off), in any case. Anything else is a SimError saying so."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in ON:
        return True
    if value in OFF:
        return False
    raise SimError(f"{name}={raw!r} is neither on nor off",
                   hint=f"set {name} to 1 (on) or 0 (off), or unset it "
                        f"(it is {'on' if default else 'off'} by default)")
