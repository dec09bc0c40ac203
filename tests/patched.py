"""Run pytest in an eventlet-monkey-patched process, as nova or neutron run.

``python -m tests.patched <pytest arguments>`` patches everything eventlet
patches (threads, locks, sockets, ``select``, ``time``) before pytest,
rpcframe or anything else of the test suite is imported, then runs pytest
with the arguments given. ``tox -e eventlet`` runs the driver contract suite
and the RabbitMQ interop, TLS and eventlet tests this way; they must pass
both patched and not.
"""

import warnings

# eventlet says on import that it is deprecated; this run is on purpose.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402 - after patching, on purpose

import pytest  # noqa: E402

if __name__ == "__main__":
    sys.exit(pytest.main(sys.argv[1:]))
