"""The embedded driver: practice nodes made of Linux namespaces, no Docker needed.

Layout of one cluster (``paths.clusters_dir()/<cluster>/``)::

    cluster.json            name, spec, nodes (name, ip, role, pid), infra pid, created
    infra.pid               holder of the cluster's user + network namespace (the bridge)
    pki/                    CA keys cached per cluster (ca, etcd/ca, front-proxy-ca, sa)
    nodes/<node>/
        rootfs/             the node's "/" (learner's view, reached by chroot):
            usr/            host /usr bound read-only; bin, lib, lib64, sbin as on the host
            usr/local/bin/  tmpfs with etcd, etcdctl, etcdutl, crictl, crontab, ... bound in
            etc/ var/ opt/ root/ tmp/ home/ run/ srv/ mnt/   node-private directories
            proc/ dev/ sys/ mounted by the node's init
            run/cka-sim/    supervisor state read by crictl: pods.json and
                            containers/<id>.json, one per container
            run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs/
                            one container's own root (its writable layer), deleted with
                            the container's record
            var/log/pods/, var/log/containers/   container logs in the CRI format
        init.pid            pid (host pid namespace) of the node's init = supervisor
        supervisor.log      the supervisor's own log

Processes: the node's init runs as PID 1 of the node's pid namespace, in the node's
user, uts, ipc, net and mount namespaces, with the host's view of the filesystem (so it
can run the host Python); it mounts proc/dev/sys/usr into ``rootfs`` and then runs the
static-pod supervisor. Everything the learner or the Node API runs enters those
namespaces (``nsenter -t <init pid> --all``) and then ``chroot``s into ``rootfs``. Each
static-pod container gets a mount namespace of its own and a root of its own, as on a
kubeadm node: the node's ``/usr`` read-only, a few ``/etc`` files copied from the node,
empty ``/var``, ``/tmp``, ``/run``, ``/root``, the node's ``/dev``, ``/proc``, ``/sys``, and
its hostPath volumes bound from the node at their mountPaths; then it ``chroot``s there
and execs. Those mounts exist only in the container's namespace, so on the node (and
the host) a container's root is a plain directory.

Network: each node has its own network namespace with ``lo`` and ``eth0`` (a veth whose
peer sits on bridge ``cka0`` in the cluster's network namespace). Addresses
``172.30.0.10`` (controlplane), ``.11``, ``.12`` ... workers from ``.20``; the cluster
namespace is private, so two clusters use the same addresses without colliding.
"""
