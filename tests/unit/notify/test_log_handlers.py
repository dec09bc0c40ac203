"""The logging handlers that turn log records into notifications."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import rpcframe
from rpcframe import opts
from rpcframe.notify import drivers, log_handler, logger
from rpcframe.notify.testing import record_notifications


@pytest.fixture
def conf(conf):
    opts.register_notifications(conf)  # so that tests can set options before building
    return conf


@pytest.fixture
def handlers():
    made = []

    def keep(handler):
        made.append(handler)
        return handler

    yield keep
    for handler in made:
        handler.close()


def record(level=logging.ERROR, msg="disk %s is full", args=("sda",), exc_info=None):
    return logging.LogRecord("svc.storage", level, "/srv/storage.py", 42, msg, args, exc_info)


def test_a_record_becomes_a_logrecord_notification_at_its_level(conf, handlers):
    handler = handlers(rpcframe.LoggingNotificationHandler("fake://", "svc.h1", "test", conf=conf))
    handler.emit(record(logging.WARNING))
    ((_, message, priority, _),) = drivers.NOTIFICATIONS
    assert (priority, message["event_type"], message["publisher_id"]) == (
        "WARN",
        "logrecord",
        "svc.h1",
    )
    payload = message["payload"]
    assert payload["msg"] == "disk sda is full"
    assert (payload["name"], payload["levelname"], payload["lineno"]) == (
        "svc.storage",
        "WARNING",
        42,
    )


def test_an_exception_travels_as_its_formatted_traceback(conf, handlers):
    handler = handlers(rpcframe.LoggingNotificationHandler("fake://", driver="test", conf=conf))
    try:
        raise RuntimeError("broken on purpose")
    except RuntimeError:
        import sys

        handler.emit(record(exc_info=sys.exc_info()))
    exc_text = drivers.NOTIFICATIONS[0][1]["payload"]["exc_info"]
    assert "Traceback" in exc_text and "RuntimeError: broken on purpose" in exc_text


def test_a_level_without_a_notifier_method_is_skipped(conf, handlers):
    handler = handlers(rpcframe.LoggingNotificationHandler("fake://", driver="test", conf=conf))
    handler.emit(record(logging.INFO + 5))  # "Level 25"
    assert drivers.NOTIFICATIONS == []


def test_a_single_topic_is_accepted(conf, handlers):
    handler = handlers(
        rpcframe.LoggingNotificationHandler("fake://", driver="test", topic="logs", conf=conf)
    )
    assert handler.notifier._topics == ["logs"]


def test_the_class_attribute_conf_is_used_as_oslo_documents(conf, handlers):
    conf.set_override("driver", ["test"], group="oslo_messaging_notifications")

    class Configured(rpcframe.LoggingNotificationHandler):
        CONF = conf

    handlers(Configured("fake://")).emit(record())
    assert len(drivers.NOTIFICATIONS) == 1


def test_logging_while_notifying_does_not_recurse(conf, handlers, caplog):
    """The log driver logs the notification; that record must not come back."""
    handler = handlers(rpcframe.LoggingNotificationHandler("fake://", driver="log", conf=conf))
    root = logging.getLogger("oslo.messaging.notification")
    root.addHandler(handler)
    try:
        with record_notifications() as recorded, caplog.at_level(logging.ERROR):
            handler.emit(record())
    finally:
        root.removeHandler(handler)
    assert recorded.event_types() == ["logrecord"]


def test_the_error_handler_sends_error_notifications(conf, handlers):
    conf.set_override("driver", ["test"], group="oslo_messaging_notifications")
    handler = handlers(rpcframe.LoggingErrorNotificationHandler(conf=conf, url="fake://"))
    handler.emit(record())
    ((_, message, priority, _),) = drivers.NOTIFICATIONS
    assert priority == "ERROR"
    assert message["publisher_id"] == "error.publisher"
    assert message["event_type"] == "error_notification"
    assert message["payload"] == {"error": "disk sda is full"}


def test_the_error_handler_stays_quiet_when_the_log_driver_is_configured(conf, handlers):
    conf.set_override("driver", ["log", "test"], group="oslo_messaging_notifications")
    handlers(rpcframe.LoggingErrorNotificationHandler(conf=conf, url="fake://")).emit(record())
    assert drivers.NOTIFICATIONS == []


def test_publish_errors_handler_is_the_error_handler():
    assert rpcframe.PublishErrorsHandler is rpcframe.LoggingErrorNotificationHandler
    assert log_handler.PublishErrorsHandler is log_handler.LoggingErrorNotificationHandler
    assert logger.LoggingNotificationHandler is rpcframe.LoggingNotificationHandler


def test_a_failing_notification_is_reported_by_logging_not_raised(conf, handlers, monkeypatch):
    handler = handlers(rpcframe.LoggingNotificationHandler("fake://", driver="test", conf=conf))
    handled = []
    monkeypatch.setattr(handler, "handleError", handled.append)
    bad = record(msg="%s", args=(object(),))
    bad.extra = object()  # cannot travel as JSON
    handler.emit(bad)
    assert handled == [bad]


LOGGING_CONFIG_SERVICE = """
import logging, logging.config, sys
from oslo_config import cfg
from rpcframe.notify import drivers

cfg.CONF(["--config-file", sys.argv[1]])  # the service parses its configuration first
logging.config.fileConfig(sys.argv[2])
logging.getLogger("svc").error("disk %s is full", "sda")
(ctxt, message, priority, retry), = drivers.NOTIFICATIONS
print(message["event_type"], priority, message["payload"]["msg"])
"""


def test_a_logging_configuration_file_sends_records_with_the_services_config(tmp_path):
    # The handler is built by logging.config, which cannot pass a ConfigOpts:
    # it reads the driver from the global cfg.CONF the service parsed, as oslo's does.
    service_conf = tmp_path / "service.conf"
    service_conf.write_text("[oslo_messaging_notifications]\ndriver = test\n")
    logging_conf = tmp_path / "logging.conf"
    logging_conf.write_text(
        "[loggers]\nkeys = root\n[handlers]\nkeys = notifier\n[formatters]\nkeys =\n"
        "[logger_root]\nlevel = ERROR\nhandlers = notifier\n"
        "[handler_notifier]\nclass = rpcframe.LoggingNotificationHandler\n"
        "level = ERROR\nargs = ('fake://',)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_CONFIG_SERVICE, str(service_conf), str(logging_conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["logrecord", "ERROR", "disk", "sda", "is", "full"]
