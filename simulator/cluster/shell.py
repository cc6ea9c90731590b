"""The learner's shell on a practice node, the same on every driver.

Its prompt shows the task and the time left (``[etcd-backup 7:42] root@controlplane:~#``),
read at every prompt from a small file the session writes into each node. The clock reads
as everywhere else in cka-sim (``simulator.timefmt.clock``): rounded toward zero, M:SS or
H:MM:SS, overtime as +M:SS.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.cluster.node import Node

SESSION_ENV_PATH = "/run/cka-sim/session.env"

# Bash copy of simulator.timefmt.clock for whole seconds: sets __cka_sim_clock_text.
BASH_CLOCK = r"""__cka_sim_clock() {
    local left=$1 sign="" h m s
    if (( left < 0 )); then sign=+; left=$(( -left )); fi
    h=$(( left / 3600 )); m=$(( left % 3600 / 60 )); s=$(( left % 60 ))
    if (( h > 0 )); then
        printf -v __cka_sim_clock_text '%s%d:%02d:%02d' "$sign" "$h" "$m" "$s"
    else
        printf -v __cka_sim_clock_text '%s%d:%02d' "$sign" "$m" "$s"
    fi
}
"""

BASHRC = r"""# cka-sim: the learner's shell on a practice node.
[ -z "$PS1" ] && return
HISTCONTROL=ignoredups
HISTSIZE=5000
shopt -s histappend checkwinsize
alias ls='ls --color=auto'
alias ll='ls -alF'
alias k=kubectl
[ -r /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
""" + BASH_CLOCK + r"""__cka_sim_prompt() {
    local key value task="" deadline="" seconds="" now
    __cka_sim_prefix=""
    if [ -r /run/cka-sim/session.env ]; then
        while IFS='=' read -r key value; do
            case "$key" in
                CKA_SIM_TASK) task=$value ;;
                CKA_SIM_DEADLINE_US) deadline=$value ;;
                CKA_SIM_DEADLINE) seconds=$value ;;
            esac
        done < /run/cka-sim/session.env
    fi
    # a session file written before microseconds were recorded has whole seconds only
    if [ -z "$deadline" ] && [ -n "$seconds" ] && [ -z "${seconds//[0-9]/}" ]; then
        deadline=${seconds}000000
    fi
    [ -n "$task" ] || return 0
    case "$deadline" in
        ''|*[!0-9]*) __cka_sim_prefix="[$task] " ;;
        *)
            if [ -n "${EPOCHREALTIME:-}" ]; then
                now=${EPOCHREALTIME/[.,]/}
            else
                printf -v now '%(%s)T000000' -1
            fi
            # bash's division rounds toward zero, as the clock does
            __cka_sim_clock $(( (deadline - now) / 1000000 ))
            __cka_sim_prefix="[$task $__cka_sim_clock_text] "
            ;;
    esac
}
PROMPT_COMMAND=__cka_sim_prompt
PS1='${__cka_sim_prefix}\u@\h:\w\$ '
"""

PROFILE = """# cka-sim
if [ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ]; then
    . "$HOME/.bashrc"
fi
"""


def session_env(task: str, deadline: float) -> bytes:
    """Contents of ``SESSION_ENV_PATH``: the task id and the deadline in epoch seconds
    (whole, for scripts) and microseconds (for the prompt's clock)."""
    return (f"CKA_SIM_TASK={task}\nCKA_SIM_DEADLINE={int(deadline)}\n"
            f"CKA_SIM_DEADLINE_US={round(deadline * 1_000_000)}\n").encode()


def write_clock(nodes: Iterable[Node], task: str, deadline: float) -> None:
    """Tell every node's prompt which task runs and when its time is up."""
    data = session_env(task, deadline)
    for node in nodes:
        node.write_file(SESSION_ENV_PATH, data)
