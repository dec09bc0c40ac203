"""rpcframe.aio notifiers and listeners on fake://, beside the threaded ones."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

import rpcframe
import rpcframe.aio
from rpcframe import exceptions
from rpcframe.notify import hooks

WAIT = 10.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


class Collect:
    """An endpoint that records what reached it and wakes the test on a count."""

    def __init__(self, expected: int = 1) -> None:
        self.seen: list[tuple[str, object, dict]] = []
        self.expected = expected
        self.done = threading.Event()
        self.threads: set[int] = set()

    def _record(self, event_type, payload, metadata):
        self.seen.append((event_type, payload, dict(metadata)))
        self.threads.add(threading.get_ident())
        if len(self.seen) >= self.expected:
            self.done.set()


class AsyncEndpoint(Collect):
    async def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(event_type, payload, metadata)


class BlockingEndpoint(Collect):
    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(event_type, payload, metadata)


class RequeueOnce(Collect):
    def __init__(self) -> None:
        super().__init__(expected=2)

    async def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(event_type, payload, metadata)
        if len(self.seen) == 1:
            raise exceptions.Requeue()


class Halting(Collect):
    async def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(event_type, payload, metadata)
        raise exceptions.HaltListener("enough")


class Batches(Collect):
    async def info(self, messages):
        for message in messages:
            self._record(message["event_type"], message["payload"], message["metadata"])


@pytest.fixture
def topic():
    return f"aio_notify_{uuid.uuid4().hex[:8]}"


async def _listening(conf, topic, endpoint, **kwargs):
    transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
    listener = rpcframe.aio.get_notification_listener(
        transport, [rpcframe.Target(topic=topic)], [endpoint], **kwargs
    )
    await listener.start()
    return transport, listener


async def _done(transport, listener):
    await listener.stop()
    await listener.wait(timeout=WAIT)
    await transport.cleanup()


def test_an_async_notifier_reaches_an_async_endpoint_and_a_blocking_one(conf, topic):
    on_loop, in_pool = AsyncEndpoint(), BlockingEndpoint()

    async def main():
        transport, listener = await _listening(conf, topic, on_loop)
        other = rpcframe.aio.get_notification_listener(
            transport, [rpcframe.Target(topic=topic)], [in_pool], pool="errors"
        )
        await other.start()
        notifier = rpcframe.aio.Notifier(
            transport, "compute.host1", driver="messagingv2", topics=[topic]
        )
        await notifier.info({}, "compute.start", {"n": 1})
        await notifier.error({}, "compute.fail", {"n": 2})
        await asyncio.to_thread(on_loop.done.wait, WAIT)
        await asyncio.to_thread(in_pool.done.wait, WAIT)
        await _done(transport, other)
        await listener.stop()
        await listener.wait(timeout=WAIT)
        return threading.get_ident()

    loop_thread = run(main())
    assert on_loop.seen[0][:2] == ("compute.start", {"n": 1})
    assert on_loop.seen[0][2]["message_id"]
    assert on_loop.threads == {loop_thread}
    assert in_pool.seen[0][:2] == ("compute.fail", {"n": 2})
    assert loop_thread not in in_pool.threads


def test_a_threaded_notifier_reaches_an_asyncio_listener(conf, topic):
    endpoint = AsyncEndpoint()

    async def main():
        transport, listener = await _listening(conf, topic, endpoint)
        threaded = rpcframe.get_notification_transport(conf, "fake://")
        notifier = rpcframe.Notifier(threaded, "api", driver="messagingv2", topics=[topic])
        await asyncio.to_thread(notifier.info, {}, "api.request", {"path": "/"})
        await asyncio.to_thread(endpoint.done.wait, WAIT)
        threaded.cleanup()
        await _done(transport, listener)

    run(main())
    assert endpoint.seen[0][:2] == ("api.request", {"path": "/"})


def test_a_requeued_notification_comes_back(conf, topic):
    endpoint = RequeueOnce()

    async def main():
        transport, listener = await _listening(conf, topic, endpoint, allow_requeue=True)
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        await notifier.info({}, "again", {"n": 1})
        await asyncio.to_thread(endpoint.done.wait, WAIT)
        await _done(transport, listener)

    run(main())
    assert [s[0] for s in endpoint.seen] == ["again", "again"]


def test_an_endpoint_can_halt_its_listener(conf, topic):
    endpoint = Halting()

    async def main():
        transport, listener = await _listening(conf, topic, endpoint)
        receiving = listener._receiving
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        await notifier.info({}, "stop.now", {})
        await asyncio.wait_for(receiving, WAIT)  # it ends: the listener stopped itself
        halted = listener._receiving is None and listener._listener is None
        await _done(transport, listener)
        return halted

    assert run(main())


def test_a_batch_listener_gets_lists(conf, topic):
    endpoint = Batches(expected=6)

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        listener = rpcframe.aio.get_batch_notification_listener(
            transport, [rpcframe.Target(topic=topic)], [endpoint], batch_size=3, batch_timeout=1
        )
        await listener.start()
        for n in range(6):
            await notifier.info({}, "tick", {"n": n})
        await asyncio.to_thread(endpoint.done.wait, WAIT)
        await _done(transport, listener)

    run(main())
    assert sorted(s[1]["n"] for s in endpoint.seen) == list(range(6))


def test_a_malformed_notification_is_dropped_and_the_listener_goes_on(conf, topic, caplog):
    endpoint = AsyncEndpoint()

    async def main():
        transport, listener = await _listening(conf, topic, endpoint)
        from rpcframe.drivers import base

        await transport._driver.send(
            base.Address("openstack", f"{topic}.info", kind=base.NOTIFY), b"{not json"
        )
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        await notifier.info({}, "fine", {})
        await asyncio.to_thread(endpoint.done.wait, WAIT)
        await _done(transport, listener)

    run(main())
    assert [s[0] for s in endpoint.seen] == ["fine"]
    assert "malformed notification" in caplog.text


def test_publish_hooks_see_asyncio_notifications(conf, topic):
    published = []

    def after(publication):
        published.append(publication.message["event_type"])

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        hooks.after_publish.connect(after)
        try:
            await notifier.info({}, "hooked", {})
        finally:
            hooks.after_publish.disconnect(after)
        await transport.cleanup()

    run(main())
    assert published == ["hooked"]


def test_a_payload_that_is_not_json_is_refused_before_sending(conf, topic):
    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
        notifier = rpcframe.aio.Notifier(transport, "p", driver="messagingv2", topics=[topic])
        try:
            with pytest.raises(exceptions.InvalidNotification, match="cannot be sent as JSON"):
                await notifier.info({}, "bad", {"x": object()})
        finally:
            await transport.cleanup()

    run(main())


def test_the_routing_driver_is_refused_by_name(conf):
    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
        try:
            with pytest.raises(exceptions.ConfigurationError, match="'routing'"):
                rpcframe.aio.Notifier(transport, "p", driver="routing")
        finally:
            await transport.cleanup()

    run(main())
