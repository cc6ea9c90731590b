"""Built-in checkers; importing this package registers every one of them."""

from checkers import certs  # noqa: F401
from checkers import etcd  # noqa: F401
from checkers import files  # noqa: F401
from checkers import kube  # noqa: F401
from checkers import script  # noqa: F401
from checkers import snapshot  # noqa: F401
