"""The notification benchmark building block reports what it measured."""

from __future__ import annotations

import pytest

from rpcframe.bench import notify


def test_every_notification_sent_is_counted_in():
    figures = notify.measure("fake://", 300, warmup=20, payload_bytes=50)
    assert figures["driver"] == "fake"
    assert (figures["count"], figures["received"], figures["complete"]) == (300, 300, True)
    assert figures["payload_bytes"] == 50
    assert figures["publish_per_s"] > 0 and figures["end_to_end_per_s"] > 0
    assert 0 < figures["publish_p50_ms"] <= figures["publish_p99_ms"]
    assert figures["elapsed_s"] > 0


def test_a_count_below_one_is_refused():
    with pytest.raises(ValueError, match="count must be at least 1"):
        notify.measure("fake://", 0)
