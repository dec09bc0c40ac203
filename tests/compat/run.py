"""Run other projects' oslo.messaging tests against rpcframe.

The tests are oslo.messaging's own unit tests for its public API, loaded
from the installed oslo.messaging wheel (its ``oslo_messaging.tests``
package, with the eventlet monkey-patching its ``__init__`` does), and the
oslo.messaging tests shipped in the keystonemiddleware wheel. Everything they
import as ``oslo_messaging[.X]`` resolves to ``rpcframe[.X]`` through
:mod:`rpcframe.dropin`; only the test modules themselves come from the wheel.

``--against oslo`` checks the harness itself: it copies the installed
oslo.messaging to a temporary directory under another name and aliases
``oslo_messaging`` to that copy, so the same machinery runs oslo's tests on
oslo's own code.

Every test outside ``known_failures.txt`` must pass, and every test listed
there must still fail (a listed test that passes is an error too, so the list
stays true); the exit status says whether both hold. ``--against oslo`` holds
oslo.messaging to ``reference_failures.txt`` the same way: the few tests that
fail on oslo itself on this machine, each with its reason.

    python -m tests.compat.run                 # against rpcframe
    python -m tests.compat.run --against oslo  # the harness on oslo itself
    python -m tests.compat.run --report        # every failure with its error
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

HERE = pathlib.Path(__file__).resolve().parent
KNOWN_FAILURES = HERE / "known_failures.txt"
REFERENCE_FAILURES = HERE / "reference_failures.txt"
MEMORY_LIMIT = 4 * 1024**3  # bytes of address space for the whole run

#: oslo.messaging's tests of its public API (module names under oslo_messaging.tests).
OSLO_MODULES = [
    "rpc.test_client",
    "rpc.test_server",
    "rpc.test_dispatcher",
    "notify.test_notifier",
    "notify.test_listener",
    "notify.test_dispatcher",
    "notify.test_logger",
    "notify.test_middleware",
    "test_target",
    "test_transport",
    "test_exception_serialization",
    "test_config_opts_proxy",
    "test_fixture",
    "test_expected_exceptions",
    "test_urls",
]

#: The tests of keystonemiddleware that use oslo.messaging.
KEYSTONEMIDDLEWARE_MODULES = [
    "keystonemiddleware.tests.unit.audit.test_audit_api",
    "keystonemiddleware.tests.unit.audit.test_audit_middleware",
    "keystonemiddleware.tests.unit.audit.test_audit_oslo_messaging",
    "keystonemiddleware.tests.unit.audit.test_logging_notifier",
]


class WheelTests(importlib.abc.MetaPathFinder):
    """Loads ``oslo_messaging.tests[.X]`` from the installed wheel's files.

    It sits in front of the alias, which resolves every other
    ``oslo_messaging`` name to the code under test.
    """

    def __init__(self, tests_dir: pathlib.Path) -> None:
        self.tests_dir = tests_dir

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "oslo_messaging.tests":
            return importlib.util.spec_from_file_location(
                fullname,
                self.tests_dir / "__init__.py",
                submodule_search_locations=[str(self.tests_dir)],
            )
        if fullname.startswith("oslo_messaging.tests."):
            return importlib.machinery.PathFinder.find_spec(fullname, path)
        return None


def installed_oslo_messaging() -> pathlib.Path:
    spec = importlib.util.find_spec("oslo_messaging")
    if spec is None or spec.origin is None:
        sys.exit("oslo.messaging is not installed: its tests come from its wheel")
    return pathlib.Path(spec.origin).parent


def prepare_imports(against: str, workdir: pathlib.Path) -> None:
    """Point ``oslo_messaging`` at the code under test, its tests at the wheel."""
    oslo_dir = installed_oslo_messaging()
    if against == "oslo":
        copy = workdir / "oslo_messaging_reference"
        shutil.copytree(oslo_dir, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        sys.path.insert(0, str(workdir))
        target = "oslo_messaging_reference"
    else:
        target = "rpcframe"
    # The alias first, then the wheel's tests in front of it.
    import rpcframe.dropin

    rpcframe.dropin.install("oslo_messaging", target)
    sys.meta_path.insert(0, WheelTests(oslo_dir / "tests"))


def load_known_failures(path: pathlib.Path) -> dict[str, str]:
    known = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" | ")
        known[test_id.strip()] = reason.strip()
    return known


class Outcomes(unittest.TestResult):
    """Every test's outcome, and the first lines of what went wrong."""

    def __init__(self, progress: bool) -> None:
        super().__init__()
        self.outcome: dict[str, str] = {}
        self.detail: dict[str, str] = {}
        self.progress = progress

    def _record(self, test, outcome, err=None):
        test_id = test.id()
        self.outcome[test_id] = outcome
        if err is not None:
            self.detail[test_id] = self._exc_info_to_string(err, test)
        if self.progress:
            sys.stderr.write({"pass": ".", "fail": "F", "skip": "s"}[outcome])
            sys.stderr.flush()

    def addSuccess(self, test):
        self._record(test, "pass")

    def addFailure(self, test, err):
        self._record(test, "fail", err)

    def addError(self, test, err):
        # setUpClass and module fixtures report as pseudo-tests.
        self._record(test, "fail", err)

    def addSkip(self, test, reason):
        self._record(test, "skip")
        self.detail[test.id()] = reason

    def addExpectedFailure(self, test, err):
        self._record(test, "pass")

    def addUnexpectedSuccess(self, test):
        self._record(test, "fail")


def load_suite(suites: list[str]) -> unittest.TestSuite:
    loader = unittest.TestLoader()
    names = []
    if "oslo" in suites:
        names += [f"oslo_messaging.tests.{m}" for m in OSLO_MODULES]
    if "keystonemiddleware" in suites:
        names += KEYSTONEMIDDLEWARE_MODULES
    suite = unittest.TestSuite()
    for name in names:
        # loadTestsFromName honours each module's load_tests (testscenarios).
        suite.addTests(loader.loadTestsFromName(name))
    return suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", choices=("rpcframe", "oslo"), default="rpcframe")
    parser.add_argument("--suite", choices=("oslo", "keystonemiddleware", "all"), default="all")
    parser.add_argument("--report", action="store_true", help="print every failure's error")
    parser.add_argument("--json", type=pathlib.Path, help="write every outcome to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress dots")
    parser.add_argument("--only-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    suites = ["oslo", "keystonemiddleware"] if args.suite == "all" else [args.suite]
    started = time.monotonic()
    if len(suites) > 1:
        # Each project's tests in a process of their own, as their own runner
        # would (some of oslo's replace stevedore's DriverManager for good).
        outcome, detail = {}, {}
        for name in suites:
            one = run_in_subprocess(name, args)
            outcome.update(one["outcome"])
            detail.update(one["detail"])
    else:
        outcome, detail = run_here(suites[0], args)
    elapsed = time.monotonic() - started
    if not args.only_run:
        remove_what_oslos_tests_leave()
    return report(args, suites, outcome, detail, elapsed)


#: What oslo.messaging's own tests leave on a broker at localhost:5672 when
#: they find one (they assume none is there), run on either library: its
#: notifier-retry test's queue.
OSLO_LEFTOVERS = ("test-retry.info",)


def remove_what_oslos_tests_leave() -> None:
    from tests.brokers import delete_queues

    delete_queues(names=OSLO_LEFTOVERS)


def run_in_subprocess(suite: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="rpcframe-compat-") as workdir:
        out = pathlib.Path(workdir) / "outcome.json"
        command = [sys.executable, "-m", "tests.compat.run", "--against", args.against]
        command += ["--suite", suite, "--json", str(out), "--only-run"]
        if args.quiet:
            command.append("--quiet")
        subprocess.run(command, cwd=HERE.parents[1], check=False)
        if not out.exists():
            return {"outcome": {f"{suite} (the run)": "fail"}, "detail": {}}
        return json.loads(out.read_text())


def run_here(suite: str, args: argparse.Namespace) -> tuple[dict, dict]:
    # A test that hangs fails after this many seconds (oslotest reads it), and
    # one that runs away with memory fails instead of taking the machine down.
    os.environ.setdefault("OS_TEST_TIMEOUT", "60")
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    # What the projects' own code warns about on every test is not our news.
    warnings.filterwarnings("ignore", category=UserWarning, module="pycadf")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with tempfile.TemporaryDirectory(prefix="rpcframe-compat-") as workdir:
        prepare_imports(args.against, pathlib.Path(workdir))
        tests = load_suite([suite])
        result = Outcomes(progress=not args.quiet)
        tests.run(result)
    if not args.quiet:
        sys.stderr.write("\n")
    return result.outcome, result.detail


def report(
    args: argparse.Namespace, suites: list[str], outcome: dict, detail: dict, elapsed: float
) -> int:
    if args.only_run:
        args.json.write_text(json.dumps({"outcome": outcome, "detail": detail}))
        return 0
    counts = {k: sum(1 for v in outcome.values() if v == k) for k in ("pass", "fail", "skip")}
    print(
        f"{args.against}: {len(outcome)} tests in {elapsed:.0f} s: {counts['pass']} passed, "
        f"{counts['fail']} failed, {counts['skip']} skipped"
    )
    if args.json:
        args.json.write_text(json.dumps({"outcome": outcome, "detail": detail}, indent=1))
    if args.report:
        for test_id, value in sorted(outcome.items()):
            if value == "fail":
                print(f"\n=== {test_id}\n{detail.get(test_id, '')}")

    listing = REFERENCE_FAILURES if args.against == "oslo" else KNOWN_FAILURES
    known = load_known_failures(listing)
    unexpected = sorted(t for t, v in outcome.items() if v == "fail" and t not in known)
    fixed = sorted(t for t, v in outcome.items() if v != "fail" and t in known)
    missing = sorted(t for t in known if t not in outcome and _in_suites(t, suites))
    for test_id in unexpected:
        first = detail.get(test_id, "").strip().splitlines()[-1:] or [""]
        print(f"FAILS (not in {listing.name}): {test_id}: {first[0]}")
    for test_id in fixed:
        print(f"PASSES (remove it from {listing.name}): {test_id}")
    for test_id in missing:
        print(f"NOT RUN (listed in {listing.name}): {test_id}")
    print(f"{listing.name}: {len(known)} listed")
    return 1 if unexpected or fixed or missing else 0


def _in_suites(test_id: str, suites: list[str]) -> bool:
    if test_id.startswith("oslo_messaging."):
        return "oslo" in suites
    return "keystonemiddleware" in suites


if __name__ == "__main__":
    sys.exit(main())
