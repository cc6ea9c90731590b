"""Helpers shared by the tests that grade and break real clusters through the registry."""

from __future__ import annotations

import time

import pytest

from simulator import registry
from simulator.cluster import binaries


def missing_kubernetes_binaries() -> list[str]:
    return [n for n, path, _ in binaries.status()
            if path is None and n in binaries.KUBERNETES_BINARIES]


needs_kubernetes = pytest.mark.skipif(
    bool(missing_kubernetes_binaries()),
    reason=f"Kubernetes binaries missing: {missing_kubernetes_binaries()} (run .ci/build-binaries.sh)")


def control_plane_unusable() -> str | None:
    """Why an embedded control plane cannot run here (no namespaces, missing binaries), or None."""
    from simulator.cluster.local.driver import LocalDriver

    probe = LocalDriver()._probe_namespaces()
    if not probe[1]:
        return f"no namespaces: {probe[2]}"
    missing = missing_kubernetes_binaries()
    if missing:
        return f"Kubernetes binaries missing ({', '.join(missing)}): run .ci/build-binaries.sh"
    return None


def check(ctx, use, /, **params):
    """Run the registered checker ``use`` as a scenario would, parameters checked first."""
    fn = registry.get_checker(use)
    registry.check_params(fn, "checker", use, params)
    return fn(ctx, **params)


def fault(ctx, use, /, **params):
    """Inject the registered fault ``use`` as a setup step would."""
    fn = registry.get_fault(use)
    registry.check_params(fn, "fault", use, params)
    fn(ctx, **params)


def wait_until(what, probe, timeout=60.0, interval=0.3):
    """Poll ``probe`` until it returns something true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def walk_from_jump_host(argv: list[str], command: str, expect: str, timeout: float = 30) -> None:
    """The exam's walk in a real terminal: the learner's shell on ``student`` (``argv``),
    ``ssh controlplane``, ``sudo -i``, ``command`` (which prints ``expect``), and back out
    to the end of the session, each prompt as the candidate sees it."""
    import pexpect

    shell = pexpect.spawn(argv[0], argv[1:], timeout=timeout, encoding="utf-8",
                          dimensions=(40, 200))
    try:
        shell.expect_exact("candidate@student:~$ ")
        shell.sendline("ssh controlplane")
        shell.expect_exact("candidate@controlplane:~$ ")
        shell.sendline("sudo -i")
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline(command)
        shell.expect_exact(expect)
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline("exit")
        shell.expect_exact("candidate@controlplane:~$ ")
        shell.sendline("exit")
        shell.expect_exact("candidate@student:~$ ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
