"""The workloads of ``rpcframe bench``: a registry, and rounds interleaved with raw references."""

from __future__ import annotations

import dataclasses
import io

import pytest

from rpcframe.bench import report, server, suite, workloads

pytestmark = pytest.mark.timeout(120)


def test_workloads_are_a_registry_others_can_extend():
    names = [workload.name for workload in workloads.WORKLOADS]
    assert names == [
        "call_sequential",
        "call_concurrent",
        "call_async_in_flight",
        "stream",
        "cast_confirmed",
        "notifications",
        "server_memory",
    ]
    assert all(isinstance(workload, workloads.Workload) for workload in workloads.WORKLOADS)


class RecordedReference:
    """Stands in for the raw py-amqp references; logs each chunk it is asked to measure."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def round_trips(self, count: int) -> list[float]:
        self.log.append(("raw round trips", count))
        return [(i + 1) / 1000 for i in range(count)]

    def protocol_round_trips(self, count: int) -> list[float]:
        self.log.append(("raw protocol round trips", count))
        return [2 * (i + 1) / 1000 for i in range(count)]

    def confirmed_publishes(self, count: int) -> float:
        self.log.append(("raw publishes", count))
        return count / 5000

    def protocol_confirmed_casts(self, count: int) -> float:
        self.log.append(("raw protocol casts", count))
        return count / 2500


@pytest.fixture
def chunk_log(monkeypatch):
    """What ran, in order: rpcframe's chunks of calls and of casts, and the reference's."""
    log: list[tuple[str, int]] = []
    timed_calls = workloads.Bench.timed_calls

    def logged_calls(self, count, advance):
        log.append(("calls", count))
        return timed_calls(self, count, advance)

    def logged_casts_received(self, ctxt, expected, timeout):
        received = casts_received(self, ctxt, expected, timeout)
        log.append(("casts received", received))
        return received

    casts_received = server.BenchEndpoint.casts_received
    monkeypatch.setattr(workloads.Bench, "timed_calls", logged_calls)
    monkeypatch.setattr(server.BenchEndpoint, "casts_received", logged_casts_received)
    return log


SETTINGS = workloads.BenchSettings(url="fake://", calls=10, casts=10, warmup=5, progress=False)
CALLS_AND_CASTS = [workloads.SequentialCalls(), workloads.ConfirmedCasts()]


def test_the_raw_references_alternate_with_rpcframe_chunk_by_chunk(chunk_log):
    settings = dataclasses.replace(SETTINGS, rounds=3)
    reference = RecordedReference(chunk_log)
    suite.measure_rpcframe(settings, io.StringIO(), reference, CALLS_AND_CASTS)
    assert chunk_log == [
        ("calls", 5),  # the warm-up
        ("calls", 4),
        ("raw round trips", 4),
        ("raw protocol round trips", 4),
        ("raw protocol round trips", 3),
        ("raw round trips", 3),
        ("calls", 3),
        ("calls", 3),
        ("raw round trips", 3),
        ("raw protocol round trips", 3),
        ("casts received", 4),
        ("raw publishes", 4),
        ("raw protocol casts", 4),
        ("raw protocol casts", 3),
        ("raw publishes", 3),
        ("casts received", 3),
        ("casts received", 3),
        ("raw publishes", 3),
        ("raw protocol casts", 3),
    ]


def test_interleaved_figures_cover_every_chunk_and_land_in_the_raw_section(chunk_log):
    settings = dataclasses.replace(SETTINGS, rounds=3)
    sections = suite.measure_rpcframe(
        settings, io.StringIO(), RecordedReference(chunk_log), CALLS_AND_CASTS
    )
    ours = sections["rpcframe"]
    assert ours["call_sequential"]["calls"] == 10
    assert ours["call_sequential"]["p50_ms"] <= ours["call_sequential"]["p99_ms"]
    assert ours["cast_confirmed"]["casts"] == 10
    assert ours["cast_confirmed"]["per_s"] <= ours["cast_confirmed"]["send_per_s"]
    round_trip = sections["raw"]["round_trip"]
    # Chunks of 4, 3 and 3 round trips taking 1, 2, 3 (, 4) ms each.
    assert (round_trip["calls"], round_trip["interleaved_rounds"]) == (10, 3)
    assert (round_trip["p50_ms"], round_trip["p99_ms"], round_trip["mean_ms"]) == (2, 4, 2.2)
    assert round_trip["per_s"] > 0
    protocol = sections["raw"]["round_trip_oslo_protocol"]
    assert (protocol["calls"], protocol["interleaved_rounds"]) == (10, 3)
    assert (protocol["p50_ms"], protocol["p99_ms"], protocol["mean_ms"]) == (4, 8, 4.4)
    # 0.2 ms a publish, summed over the chunks.
    assert sections["raw"]["confirmed_publish"] == {
        "publishes": 10,
        "per_s": 5000.0,
        "interleaved_rounds": 3,
    }
    assert sections["raw"]["confirmed_cast_oslo_protocol"] == {
        "casts": 10,
        "per_s": 2500.0,
        "interleaved_rounds": 3,
    }
    whole = {"url": "fake://", "settings": dataclasses.asdict(settings), **sections}
    assert "call_sequential / raw round trip (target >= 0.85)" in report.ratios(whole)
    assert "cast_confirmed / raw confirmed publish (target >= 0.8)" in report.ratios(whole)
    assert report.ratios(whole)["raw round trip doing oslo's protocol work / raw round trip"] == (
        round(protocol["per_s"] / round_trip["per_s"], 3)
    )


def test_without_a_reference_rpcframe_runs_in_the_same_chunks(chunk_log):
    # So that its figures mean the same with and without --compare.
    settings = dataclasses.replace(SETTINGS, rounds=3)
    sections = suite.measure_rpcframe(settings, io.StringIO(), workloads=CALLS_AND_CASTS)
    assert list(sections) == ["rpcframe"]
    assert chunk_log == [
        ("calls", 5),  # the warm-up
        ("calls", 4),
        ("calls", 3),
        ("calls", 3),
        ("casts received", 4),
        ("casts received", 3),
        ("casts received", 3),
    ]
    assert sections["rpcframe"]["call_sequential"]["calls"] == 10
    assert sections["rpcframe"]["cast_confirmed"]["casts"] == 10


NONBLOCKING = dataclasses.replace(
    SETTINGS, threads=2, in_flight=8, stream_chunks=30, chunk_sizes=(64, 4096), rounds=3
)


def test_calls_in_flight_are_whole_batches_with_a_rate_a_latency_and_a_ratio_to_threads():
    # 10 calls asked, 8 in flight: two whole batches, and as many calls from 2 threads.
    workloads_run = [workloads.CallsInFlight()]
    ours = suite.measure_rpcframe(NONBLOCKING, io.StringIO(), workloads=workloads_run)["rpcframe"]
    flight = ours["call_async_in_flight"]
    assert (flight["in_flight"], flight["calls"], flight["threads"]) == (8, 16, 2)
    assert flight["per_s"] > 0 and flight["threads_per_s"] > 0
    assert 0 < flight["p50_ms"] <= flight["p99_ms"]
    found = report.ratios({"rpcframe": ours})
    name = "call_async, 8 in flight from one thread / 2 threads of sequential calls (target >= 1)"
    assert found[name] == round(flight["per_s"] / flight["threads_per_s"], 3)


def test_streams_report_chunks_and_megabytes_per_second_for_each_size_and_a_ratio_to_calls():
    workloads_run = [workloads.Streams()]
    ours = suite.measure_rpcframe(NONBLOCKING, io.StringIO(), workloads=workloads_run)["rpcframe"]
    stream = ours["stream"]
    assert (stream["chunks"], stream["streams"], stream["window"]) == (30, 3, 64)
    # The sequential calls it divides by are measured in the same rounds.
    assert stream["sequential_calls"] == 10
    sequential = stream["sequential_per_s"]
    assert sequential > 0
    found = report.ratios({"rpcframe": ours})
    for size in (64, 4096):
        per_s = stream[f"per_s_{size}B"]
        assert per_s > 0
        assert stream[f"mb_per_s_{size}B"] == pytest.approx(per_s * size / 1e6, rel=0.01)
        name = f"stream chunks/s ({size} B chunks) / sequential calls/s (target >= 10)"
        assert found[name] == round(per_s / sequential, 3)


def test_oslo_messaging_has_no_calls_in_flight_nor_streams():
    class OsloLike:
        __name__ = "oslo_messaging"

    bench = workloads.Bench(OsloLike(), object(), NONBLOCKING, io.StringIO())
    assert workloads.CallsInFlight().run(bench) is None
    assert workloads.Streams().run(bench) is None
