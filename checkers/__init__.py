"""Built-in checkers; importing this package registers every one of them."""

from checkers import (
    certs,  # noqa: F401
    etcd,  # noqa: F401
    facts,  # noqa: F401
    files,  # noqa: F401
    kube,  # noqa: F401
    script,  # noqa: F401
    snapshot,  # noqa: F401
)
