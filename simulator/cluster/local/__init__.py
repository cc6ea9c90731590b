"""The embedded driver: practice nodes made of Linux namespaces, no Docker needed.

Layout of one cluster (``paths.clusters_dir()/<cluster>/``)::

    cluster.json            name, spec, nodes (name, ip, role, pid), infra pid, created
    infra.pid               holder of the cluster's user + network namespace (the bridge)
    pki/                    CA keys cached per cluster (ca, etcd/ca, front-proxy-ca, sa)
    nodes/<node>/
        rootfs/             the node's "/" (learner's view, reached by chroot):
            usr/            host /usr bound read-only; bin, lib, lib64, sbin as on the host
            usr/local/bin/  tmpfs with etcd, etcdctl, etcdutl, crictl, ... bound in
            etc/ var/ opt/ root/ tmp/ home/ run/ srv/ mnt/   node-private directories
            proc/ dev/ sys/ mounted by the node's init
        init.pid            pid (host pid namespace) of the node's init = supervisor
        supervisor.log      the supervisor's own log
        containers/         supervisor state: one JSON file per container (for crictl)

Processes: the node's init runs as PID 1 of the node's pid namespace, in the node's
user, uts, ipc, net and mount namespaces, with the host's view of the filesystem (so it
can run the host Python); it mounts proc/dev/sys/usr into ``rootfs`` and then runs the
static-pod supervisor. Everything the learner or the Node API runs enters those
namespaces (``nsenter -t <init pid> --all``) and then ``chroot``s into ``rootfs``. Each
static-pod container gets a mount namespace of its own in which its hostPath volumes are
bound at their mountPaths inside ``rootfs`` before it ``chroot``s and execs.

Network: each node has its own network namespace with ``lo`` and ``eth0`` (a veth whose
peer sits on bridge ``cka0`` in the cluster's network namespace). Addresses
``172.30.0.10`` (controlplane), ``.11``, ``.12`` ... workers from ``.20``; the cluster
namespace is private, so two clusters use the same addresses without colliding.
"""
