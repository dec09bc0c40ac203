"""An OpenStack-style service written only against oslo.messaging's API.

``make_service(oslo_messaging)`` builds it on whichever implementation is
passed in, so the same code runs on oslo.messaging and on rpcframe: the
client wrapper with a version cap, a versioned endpoint in a namespace, a
request-context serializer, expected exceptions and a fanout cast.
"""

from __future__ import annotations

import threading


class InstanceNotFound(Exception):
    # Its args are its constructor's arguments, so a peer can rebuild it.
    def __init__(self, instance_id):
        super().__init__(instance_id)
        self.instance_id = instance_id

    def __str__(self):
        return f"instance {self.instance_id} not found"


def make_service(oslo_messaging):
    class RequestContextSerializer(oslo_messaging.Serializer):
        def __init__(self, base):
            self._base = base

        def serialize_entity(self, ctxt, entity):
            return self._base.serialize_entity(ctxt, entity)

        def deserialize_entity(self, ctxt, entity):
            return self._base.deserialize_entity(ctxt, entity)

        def serialize_context(self, ctxt):
            return ctxt.to_dict()

        def deserialize_context(self, ctxt):
            return RequestContext.from_dict(ctxt)

    class RequestContext:
        def __init__(self, user_id, project_id, is_admin=False):
            self.user_id, self.project_id, self.is_admin = user_id, project_id, is_admin

        def to_dict(self):
            return {
                "user_id": self.user_id,
                "project_id": self.project_id,
                "is_admin": self.is_admin,
            }

        @classmethod
        def from_dict(cls, values):
            return cls(values["user_id"], values["project_id"], values.get("is_admin", False))

    class ComputeAPI:
        """The client side: one method per remote method."""

        VERSION = "5.0"

        def __init__(self, transport, version_cap="5.2"):
            target = oslo_messaging.Target(topic="compute", version=self.VERSION)
            serializer = RequestContextSerializer(oslo_messaging.NoOpSerializer())
            self.client = oslo_messaging.get_rpc_client(
                transport, target, version_cap=version_cap, serializer=serializer, timeout=20
            )

        def get_instance(self, ctxt, host, instance_id):
            cctxt = self.client.prepare(server=host)
            return cctxt.call(ctxt, "get_instance", instance_id=instance_id)

        def resize(self, ctxt, host, instance_id, flavor, clean_shutdown=True):
            version, kwargs = "5.0", {"instance_id": instance_id, "flavor": flavor}
            if self.client.can_send_version("5.2"):
                version = "5.2"
                kwargs["clean_shutdown"] = clean_shutdown
            return self.client.prepare(server=host, version=version).call(ctxt, "resize", **kwargs)

        def refresh_all(self, ctxt):
            self.client.prepare(fanout=True).cast(ctxt, "refresh")

    class ComputeManager:
        """The server side endpoint."""

        target = oslo_messaging.Target(version="5.3")

        def __init__(self, host):
            self.host = host
            self.refreshed = threading.Event()
            self.seen_users = []

        @oslo_messaging.expected_exceptions(InstanceNotFound)
        def get_instance(self, ctxt, instance_id):
            self.seen_users.append(ctxt.user_id)
            if instance_id == "missing":
                raise InstanceNotFound(instance_id)
            return {"id": instance_id, "host": self.host, "admin": ctxt.is_admin}

        def resize(self, ctxt, instance_id, flavor, clean_shutdown=False):
            return [instance_id, flavor, clean_shutdown]

        def refresh(self, ctxt):
            self.refreshed.set()

    class BaseAPI:
        target = oslo_messaging.Target(namespace="baseapi", version="1.1")

        def ping(self, ctxt, arg):
            return {"pong": arg}

    def start_server(transport, host):
        manager = ComputeManager(host)
        server = oslo_messaging.get_rpc_server(
            transport,
            oslo_messaging.Target(topic="compute", server=host),
            [manager, BaseAPI()],
            executor="threading",
            serializer=RequestContextSerializer(oslo_messaging.NoOpSerializer()),
        )
        server.start()
        return server, manager

    return ComputeAPI, RequestContext, start_server
