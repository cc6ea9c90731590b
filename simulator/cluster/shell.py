"""The learner's shell on a practice node, the same on every driver.

Its prompt shows the task and the time left (``[etcd-backup 7:42] root@controlplane:~#``),
read at every prompt from a small file the session writes into each node.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.cluster.node import Node

SESSION_ENV_PATH = "/run/cka-sim/session.env"

BASHRC = r"""# cka-sim: the learner's shell on a practice node.
[ -z "$PS1" ] && return
HISTCONTROL=ignoredups
HISTSIZE=5000
shopt -s histappend checkwinsize
alias ls='ls --color=auto'
alias ll='ls -alF'
alias k=kubectl
[ -r /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
__cka_sim_prompt() {
    local key value task="" deadline="" now left
    __cka_sim_prefix=""
    if [ -r /run/cka-sim/session.env ]; then
        while IFS='=' read -r key value; do
            case "$key" in
                CKA_SIM_TASK) task=$value ;;
                CKA_SIM_DEADLINE) deadline=$value ;;
            esac
        done < /run/cka-sim/session.env
    fi
    [ -n "$task" ] || return 0
    case "$deadline" in
        ''|*[!0-9]*) __cka_sim_prefix="[$task] " ;;
        *)
            printf -v now '%(%s)T' -1
            left=$(( deadline - now ))
            (( left < 0 )) && left=0
            printf -v __cka_sim_prefix '[%s %d:%02d] ' "$task" $(( left / 60 )) $(( left % 60 ))
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
    """Contents of ``SESSION_ENV_PATH``: the task id and the deadline in epoch seconds."""
    return f"CKA_SIM_TASK={task}\nCKA_SIM_DEADLINE={int(deadline)}\n".encode()


def write_clock(nodes: Iterable[Node], task: str, deadline: float) -> None:
    """Tell every node's prompt which task runs and when its time is up."""
    data = session_env(task, deadline)
    for node in nodes:
        node.write_file(SESSION_ENV_PATH, data)
