"""A service configuration as Kolla-Ansible writes it, for both sides of a test.

Kolla-Ansible's service templates (nova.conf.j2, neutron.conf.j2, ...) write
this ``[oslo_messaging_rabbit]`` section for every service: the queue
manager, quorum queues, transient quorum queues, stream fanout with a
prefetch count of 50, and ``heartbeat_in_pthread``. The file adds what a
test needs to keep to itself: its own exchange, a host name of its own for
the queue manager (so that its counter file and queue names are its own)
and a lock directory.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from oslo_config import cfg

from rpcframe.drivers.amqp import queue_manager
from tests import brokers

#: What Kolla-Ansible writes in ``[oslo_messaging_rabbit]`` (RabbitMQ without TLS).
RABBIT_SECTION = """\
use_queue_manager = true
heartbeat_in_pthread = false
rabbit_quorum_queue = true
rabbit_stream_fanout = true
rabbit_qos_prefetch_count = 50
rabbit_transient_quorum_queue = true
heartbeat_timeout_threshold = 60
heartbeat_rate = 3
"""


@dataclass(frozen=True)
class Deployment:
    """One test's configuration file and the names it gives the broker."""

    path: str
    exchange: str
    hostname: str
    processname: str
    notifications: str

    def conf(self) -> cfg.ConfigOpts:
        """A ConfigOpts that has read the file, as a service's would."""
        conf = cfg.ConfigOpts()
        conf(["--config-file", self.path])
        return conf

    @property
    def reply_prefix(self) -> str:
        return f"reply_{self.hostname}:"


@contextlib.contextmanager
def deployment(
    tmp: pathlib.Path, rabbit_section: str = RABBIT_SECTION, url: str = brokers.RABBIT_URL
) -> Iterator[Deployment]:
    """Write the file; afterwards delete the test's queues, exchanges and counter."""
    tag = uuid.uuid4().hex[:10]
    lock_path = tmp / "locks"
    deploy = Deployment(
        path=str(tmp / "service.conf"),
        exchange=f"kolla_x{tag}",
        hostname=f"kolla-node-{tag}",
        processname="kolla-service",
        notifications=f"kolla_notifications_{tag}",
    )
    pathlib.Path(deploy.path).write_text(
        f"[DEFAULT]\n"
        f"transport_url = {url}\n"
        f"control_exchange = {deploy.exchange}\n\n"
        f"[oslo_messaging_rabbit]\n"
        f"{rabbit_section}"
        f"hostname = {deploy.hostname}\n"
        f"processname = {deploy.processname}\n\n"
        f"[oslo_messaging_notifications]\n"
        f"driver = messagingv2\n"
        f"topics = {deploy.notifications}\n\n"
        f"[oslo_concurrency]\n"
        f"lock_path = {lock_path}\n"
    )
    try:
        yield deploy
    finally:
        brokers.delete_queues(prefixes=(f"kolla_{tag}", deploy.notifications, deploy.reply_prefix))
        brokers.delete_exchanges([deploy.exchange], prefixes=(f"kolla_{tag}",))
        with contextlib.suppress(OSError):
            os.remove(
                os.path.join(
                    queue_manager.SHM_DIR, f"{deploy.hostname}_{deploy.processname}_qmanager"
                )
            )


def topic(deploy: Deployment, name: str) -> str:
    """A topic of the deployment (its queues are deleted with it)."""
    return f"kolla_{deploy.exchange[len('kolla_x') :]}_{name}"
