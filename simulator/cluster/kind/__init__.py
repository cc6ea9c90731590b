"""The kind driver: practice clusters as kind clusters (kubeadm in Docker containers).

``driver.py`` creates, attaches, lists and deletes them with the ``kind`` and ``docker``
commands; ``nodes.py`` is the Node API over ``docker exec``. Scenarios see the exam's node
names (``controlplane``, ``controlplane2``, ``node01``); inside a node the kernel hostname,
the etcd member name and the certificates keep kind's container name
(``<cluster>-control-plane``), because kubeadm and the kubelet were set up with it. Only the
shell prompt shows the exam name.
"""
