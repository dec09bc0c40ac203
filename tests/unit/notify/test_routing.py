"""The routing driver: a YAML file chooses drivers per event type and priority."""

from __future__ import annotations

import logging
import sys

import pytest

import rpcframe
from rpcframe import exceptions
from rpcframe.notify import drivers

ROUTES = """
audit:
    test:
        accepted_events:
            - compute.instance.*
        accepted_priorities:
            - info
            - ERROR
debugging:
    log:
        accepted_priorities:
            - debug
    test:
        accepted_events:
            - network.*
"""


@pytest.fixture
def routed(conf, transport, tmp_path):
    def build(text: str = ROUTES):
        path = tmp_path / "routing.yaml"
        path.write_text(text, encoding="utf-8")
        conf.set_override("routing_config", str(path), group="oslo_messaging_notifications")
        return rpcframe.Notifier(transport, "pub", driver="routing")

    return build


def sent_event_types():
    return [(message["event_type"], priority) for _, message, priority, _ in drivers.NOTIFICATIONS]


def test_events_and_priorities_that_match_go_to_the_driver(routed):
    notifier = routed()
    notifier.info({}, "compute.instance.create", {})
    notifier.error({}, "compute.instance.delete", {})
    assert sent_event_types() == [
        ("compute.instance.create", "INFO"),
        ("compute.instance.delete", "ERROR"),
    ]


def test_an_event_must_meet_every_rule_of_a_route(routed):
    notifier = routed()
    notifier.warn({}, "compute.instance.create", {})  # event matches, priority does not
    notifier.info({}, "image.upload", {})  # priority matches, event does not
    assert sent_event_types() == []


def test_a_driver_chosen_by_two_groups_gets_the_notification_once(routed):
    notifier = routed(ROUTES.replace("network.*", "compute.*"))
    notifier.info({}, "compute.instance.create", {})
    assert sent_event_types() == [("compute.instance.create", "INFO")]


def test_each_chosen_driver_gets_the_notification(routed, caplog):
    notifier = routed()
    with caplog.at_level(logging.DEBUG, logger="oslo.messaging.notification"):
        notifier.debug({}, "network.port.up", {})
    assert sent_event_types() == [("network.port.up", "DEBUG")]
    assert [r.name for r in caplog.records if r.name.startswith("oslo.messaging.notification")] == [
        "oslo.messaging.notification.network.port.up"
    ]


def test_a_route_without_rules_takes_everything(routed):
    routed("all:\n    test: {}\n").sample({}, "cpu.util", {})
    assert sent_event_types() == [("cpu.util", "SAMPLE")]


def test_without_a_routing_file_nothing_is_sent(transport, caplog):
    with caplog.at_level(logging.WARNING):
        rpcframe.Notifier(transport, driver="routing").info({}, "a.b", {})
    assert sent_event_types() == []
    assert "no routing_config" in caplog.text


def test_an_unknown_driver_in_the_file_is_reported_as_a_failed_publish(routed, caplog):
    with caplog.at_level(logging.ERROR):
        routed("g:\n    nosuch:\n        accepted_priorities: [info]\n").info({}, "a.b", {})
    assert "unknown notification drivers: nosuch" in caplog.text


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- a\n- b\n", "expected a mapping of routing groups"),
        ("g: [1]\n", "group 'g' must map driver names to rules"),
        ("g:\n    test:\n        accepted_colours: [red]\n", "unknown rule 'accepted_colours'"),
        ("g:\n    test:\n        accepted_events: compute.*\n", "must be a list of strings"),
        ("g: [unclosed\n", "is not YAML"),
    ],
)
def test_a_malformed_routing_file_says_what_is_wrong(conf, transport, tmp_path, text, complaint):
    from rpcframe.notify.routing import RoutingDriver

    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    conf.set_override("routing_config", str(path), group="oslo_messaging_notifications")
    driver = RoutingDriver(conf, [], transport)
    with pytest.raises(exceptions.ConfigurationError, match=complaint):
        driver.notify({}, {"event_type": "a.b"}, "INFO", None)


def test_a_missing_routing_file_says_so(conf, transport, tmp_path):
    from rpcframe.notify.routing import RoutingDriver

    missing = str(tmp_path / "absent.yaml")
    conf.set_override("routing_config", missing, group="oslo_messaging_notifications")
    with pytest.raises(exceptions.ConfigurationError, match="cannot read routing_config"):
        RoutingDriver(conf, [], transport).notify({}, {"event_type": "a.b"}, "INFO", None)


def test_without_pyyaml_the_error_says_what_to_install(conf, transport, tmp_path, monkeypatch):
    from rpcframe.notify.routing import RoutingDriver

    path = tmp_path / "r.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    conf.set_override("routing_config", str(path), group="oslo_messaging_notifications")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes "import yaml" fail
    with pytest.raises(exceptions.ConfigurationError, match=r"pip install 'rpcframe\[routing\]'"):
        RoutingDriver(conf, [], transport).notify({}, {"event_type": "a.b"}, "INFO", None)
