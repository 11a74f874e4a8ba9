"""The thread policy (cnnmft._threads): parsing, defaults; numba, BLAS and torch obey it."""

import os
import subprocess
import sys
import threading
import time
import types

import numba
import numpy as np
import pytest

from cnnmft import _threads
from cnnmft._kernels._jit import ParallelDispatcher, cjit, pjit

_REAL_OTHERS_RUNNING = _threads.others_running  # the fixture below replaces it in every test


def _idle(monkeypatch, load=0.0, running=0):
    """Pretend the machine's load average is `load` and `running` other threads run now (and
    forget the last look at them)."""
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(_threads, "others_running", lambda: running)
    monkeypatch.setitem(_threads._AUTO, "t", -float("inf"))
    # this process's own recent CPU use counts as ~0: a last look 1,000 s ago at the CPU time
    # used so far (with no look, it would be the average since start-up, which the imports and
    # compiles before a test make large and the pretended load then partly this process's own)
    monkeypatch.setitem(_threads._AUTO, "sample", (time.monotonic() - 1000.0, time.process_time()))


@pytest.fixture(autouse=True)
def _restore_policy(monkeypatch):
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    _idle(monkeypatch)
    yield
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    _threads.set_num_threads(None)


def _sum_kernel(x):
    total = 0.0
    for i in numba.prange(x.size):
        total += x[i]
    return total


_psum = pjit(_sum_kernel, cache=False)  # a parallel kernel under the project policy


def _blas_counts():
    from threadpoolctl import threadpool_info

    return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,n", [("1", 1), (" 3 ", 3), ("16", 16)])
def test_parse_accepts_positive_integers(text, n):
    assert _threads.parse_num_threads(text, "X") == n


@pytest.mark.parametrize("text", ["0", "-1", "abc", "", "1.5", "2 threads", "0x2"])
def test_parse_rejects_bad_strings(text):
    with pytest.raises(ValueError, match=r"`CNNMFT_NUM_THREADS` must be an integer >= 1.*got"):
        _threads.parse_num_threads(text, "CNNMFT_NUM_THREADS")


@pytest.mark.parametrize(
    "value,exc",
    [(0, ValueError), (-2, ValueError), (1.0, TypeError), (True, TypeError), ([1], TypeError)],
)
def test_set_num_threads_rejects_bad_values(value, exc):
    with pytest.raises(exc, match="`n` must be an integer >= 1"):
        _threads.set_num_threads(value)


@pytest.mark.parametrize("text", ["0", "-1", "abc"])
def test_bad_environment_variable_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv(_threads.ENV_VAR, text)
    with pytest.raises(ValueError, match=repr(text)):
        _threads.get_num_threads()


def test_bad_environment_variable_named_in_a_fresh_process():
    env = {**os.environ, _threads.ENV_VAR: "abc"}
    code = "import cnnmft._threads as t; t.get_num_threads()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "`CNNMFT_NUM_THREADS` must be an integer >= 1" in out.stderr


# --- defaults ----------------------------------------------------------------------------------


def test_default_is_the_cpus_the_process_may_use():
    assert _threads.get_num_threads() == _threads.available_cpus()
    assert 1 <= _threads.available_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    "cpus,load,own,n",
    [
        (8, 0.0, 0.0, 8),
        (8, 2.0, 2.0, 8),
        (8, 3.0, 0.0, 5),
        (8, 7.6, 0.0, 1),
        (8, 40.0, 1.0, 1),
        (2, 2.0, 0.0, 1),
        (2, 0.4, 0.0, 2),
        (1, 0.0, 0.0, 1),
    ],
)
def test_load_aware_default(cpus, load, own, n):
    assert _threads.load_aware(cpus, load, own) == n


def test_busy_machine_gives_one_thread(monkeypatch):
    _idle(monkeypatch, load=50.0)
    assert _threads.get_num_threads() == 1
    _psum(np.ones(16))
    assert numba.get_num_threads() == 1
    monkeypatch.setenv(_threads.ENV_VAR, "2")  # an explicit count overrides the load
    assert _threads.get_num_threads() == 2


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv(_threads.ENV_VAR, "1")
    assert _threads.get_num_threads() == 1
    assert _threads.set_num_threads(None) == 1


@pytest.mark.parametrize(
    "cpu_max,expected", [("150000 100000\n", 1.5), ("max 100000\n", None), ("50000 100000", 0.5)]
)
def test_cgroup_v2_quota(tmp_path, cpu_max, expected):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cpu.max").write_text(cpu_max)
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job\n")
    assert _threads._cgroup_quota(str(tmp_path), str(proc)) == expected


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _threads._cgroup_quota(str(tmp_path), str(tmp_path / "missing")) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _threads._cgroup_quota(str(tmp_path), str(tmp_path / "missing")) is None


def test_quota_caps_available_cpus(monkeypatch):
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda *a: 0.5)
    assert _threads.available_cpus() == 1  # rounds up, never 0


# --- the policy is applied ---------------------------------------------------------------------


def test_parallel_kernels_use_the_policy_dispatcher():
    from numba.core.registry import CPUDispatcher

    from cnnmft._kernels import _act, _cov, _maps, _quad, _spectrum, _tables

    assert isinstance(_psum, ParallelDispatcher)
    parallel = [
        obj
        for mod in (_act, _cov, _maps, _quad, _spectrum, _tables)
        for obj in vars(mod).values()
        if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel")
    ]
    assert _maps.fixed_point_many in parallel and _tables.grid in parallel
    assert all(isinstance(k, ParallelDispatcher) for k in parallel)


def test_set_num_threads_reaches_numba_and_blas():
    x = np.arange(1000.0)
    assert _threads.set_num_threads(1) == 1
    assert numba.get_num_threads() == 1
    assert _blas_counts() == {1}
    assert _psum(x) == 499500.0
    assert numba.get_num_threads() == 1
    _threads.set_num_threads(None)
    assert numba.get_num_threads() == min(_threads.available_cpus(), numba.config.NUMBA_NUM_THREADS)


def test_policy_reaches_other_threads_through_the_kernels():
    """numba's count is per thread: a kernel called from a new thread applies the policy there."""
    seen = {}

    def work():
        seen["before"] = numba.get_num_threads()
        seen["sum"] = _psum(np.ones(64))
        seen["after"] = numba.get_num_threads()

    _threads.set_num_threads(1)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["sum"] == 64.0
    assert seen["after"] == 1
    assert seen["before"] == numba.config.NUMBA_NUM_THREADS  # numba's own default there


def test_limit_threads_nests_and_restores():
    _threads.set_num_threads(None)
    outer = numba.get_num_threads()
    with _threads.limit_threads(1) as n:
        assert n == 1 and _threads.get_num_threads() == 1
        assert numba.get_num_threads() == 1 and _blas_counts() == {1}
        assert _psum(np.ones(10)) == 10.0
        assert numba.get_num_threads() == 1  # the kernel keeps the block's count
    assert numba.get_num_threads() == outer
    assert _threads.get_num_threads() == _threads.available_cpus()


def test_torch_follows_the_policy_when_imported():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        _threads.set_num_threads(1)
        assert torch.get_num_threads() == 1
        with _threads.limit_threads(1):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_import_cnnmft_does_not_import_torch_for_the_policy():
    code = (
        "import sys, cnnmft, cnnmft._threads as t; t.set_num_threads(1); "
        "print('torch' in sys.modules, 'distributed' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_environment_variable_in_a_fresh_process():
    env = {**os.environ, _threads.ENV_VAR: "1"}
    code = (
        "import numba, numpy as np; from cnnmft._kernels import _jit; "
        "f = _jit.pjit(lambda x: x.sum(), cache=False); f(np.ones(4)); "
        "print(numba.get_num_threads(), numba.threading_layer())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    n, layer = out.stdout.split()
    assert n == "1"
    assert layer in ("workqueue", "tbb")  # never the spinning GNU OpenMP by default


def test_user_threading_layer_is_kept():
    env = {**os.environ, "NUMBA_THREADING_LAYER": "omp"}
    code = (
        "import numba, numpy as np; from cnnmft._kernels import _jit; "
        "f = _jit.pjit(lambda x: x.sum(), cache=False); f(np.ones(4)); "
        "print(numba.threading_layer())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "omp"


# --- worker processes ----------------------------------------------------------------------------


def test_worker_env_sets_every_pool():
    env = _threads.worker_env(2)
    for var in (
        "CNNMFT_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    ):
        assert env[var] == "2"
    with pytest.raises(ValueError, match="`n`"):
        _threads.worker_env(0)


def test_worker_env_in_a_subprocess():
    code = (
        "import numba, threadpoolctl, numpy; "
        "print(numba.config.NUMBA_NUM_THREADS, "
        "{d['num_threads'] for d in threadpoolctl.threadpool_info()})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **_threads.worker_env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["1", "{1}"]


def _inside_worker():
    from cnnmft import _threads as t

    _psum(np.ones(8))
    return t.get_num_threads(), numba.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def test_dask_worker_plugin():
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0", silence_logs=50
    )
    try:
        with distributed.Client(cluster, timeout=120) as client:
            client.register_plugin(_threads.dask_worker_plugin(1))
            futures = [client.submit(_inside_worker, pure=False) for _ in range(4)]
            distributed.wait(futures, timeout=300)  # a worker that died must not hang the run
            results = client.gather(futures)
    finally:
        cluster.close()
    assert set(results) == {(1, 1, "1")}


# --- compile notice and disk cache ---------------------------------------------------------------


def test_compile_notice_once_then_cache(tmp_path):
    """An empty cache prints one line while compiling; the next process loads from the cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "CNNMFT_QUIET": ""}
    code = "from cnnmft._kernels import _act; print(_act.phi(1, 0.5))"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    assert abs(float(runs[0].stdout) - np.tanh(0.5)) < 1e-15
    notice = [ln for ln in runs[0].stderr.splitlines() if "cnnmft: compiling" in ln]
    assert len(notice) == 1 and "first run only" in notice[0] and " done in " in notice[0]
    assert "cnnmft: compiling" not in runs[1].stderr
    assert list(tmp_path.rglob("*.nbi"))


def test_compile_notice_silenced_by_quiet(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "CNNMFT_QUIET": "1"}
    code = "from cnnmft._kernels import _act; _act.phi(2, 0.5)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "cnnmft: compiling" not in out.stderr


def test_parallel_kernels_from_several_python_threads_do_not_abort():
    """numba's workqueue layer aborts on concurrent launches; cnnmft's launches take turns."""
    code = (
        "import threading, numpy as np, cnnmft\n"
        "cnnmft.set_num_threads(2)\n"
        "ref = cnnmft.phase_diagram('tanh', np.linspace(0.5, 3, 12), [0.05]).q_star\n"
        "out = []\n"
        "def work():\n"
        "    for _ in range(3):\n"
        "        d = cnnmft.phase_diagram('tanh', np.linspace(0.5, 3, 12), [0.05])\n"
        "        out.append(np.array_equal(d.q_star, ref))\n"
        "ts = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
        "print(len(out), all(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-2:] == ["12", "True"]


# --- what the first call compiles -----------------------------------------------------------------


def test_helpers_refuse_calls_from_python():
    """Kernels without a Python wrapper raise instead of crashing the interpreter."""
    from cnnmft._kernels import _maps, _quad
    from cnnmft._kernels._jit import HelperDispatcher

    for k in (_maps.q_noise, _quad._sorted_copy, _quad.normal_pdf):
        assert isinstance(k, HelperDispatcher)
    with pytest.raises(TypeError, match="q_noise is an internal numba kernel"):
        _maps.q_noise(1.0, 1.0, 1.0, 1.0)
    # the private copies made for a custom activation keep the refusal
    import math

    from cnnmft._kernels import _custom
    from cnnmft.activations import register_activation

    ns = _custom.kernels_for(register_activation("_helper_probe", lambda x: math.tanh(x)))
    assert isinstance(ns.maps.q_noise, HelperDispatcher)
    with pytest.raises(TypeError, match="internal numba kernel"):
        ns.maps.q_noise(1.0, 1.0, 1.0, 1.0)


def test_edge_sort_matches_numpy():
    """The rules' own sort (no numba generic sort in the first compile) against np.sort."""
    from cnnmft._kernels import _quad

    @numba.njit
    def run(x, n):
        return _quad._sorted_copy(x, n)

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 5, 40, 300):
        x = np.concatenate([rng.normal(size=n), np.full(7, 0.5)])
        x[: n // 2] = np.sort(x[: n // 2])  # sorted runs, as the graded edges come
        if n > 3:
            x[1] = x[3]  # ties
        assert np.array_equal(run(x, n), np.sort(x[:n]))


def test_one_fixed_point_does_not_compile_the_parallel_driver():
    """A scalar call (the first call after installing) runs the serial driver only."""
    code = (
        "import cnnmft; from cnnmft._kernels import _maps\n"
        "fp = cnnmft.fixed_point('tanh', 2.5, 0.05)\n"
        "print(len(_maps.fixed_point_many.signatures), len(_maps.fixed_point_range.signatures),"
        " float(fp.c_star))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    many, serial, c = out.stdout.split()
    assert (many, serial) == ("0", "1")
    assert 0.0 < float(c) < 1.0  # chaotic phase: c* in (0, 1) (its value: test_meanfield)


# --- load that has just started -----------------------------------------------------------------


def test_new_load_counts_before_the_load_average_rises(monkeypatch):
    """Busy processes started a second ago: the load average still says idle, the running
    count does not, and the default drops to one thread on two CPUs."""
    monkeypatch.setattr(_threads, "available_cpus", lambda: 2)
    _idle(monkeypatch, load=0.0, running=0)
    assert _threads.get_num_threads() == 2
    _idle(monkeypatch, load=0.0, running=2)
    assert _threads.get_num_threads() == 1
    _idle(monkeypatch, load=2.0, running=0)  # old load that has just stopped: still counted
    assert _threads.get_num_threads() == 1


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc")
def test_others_running_sees_busy_processes():
    """Two busy-looping processes are runnable at every look; this process's threads are not
    counted."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        seen = _REAL_OTHERS_RUNNING()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert seen is not None and seen >= 2


def test_blas_loaded_after_the_setting_gets_it_at_the_next_kernel(monkeypatch):
    """A BLAS library that appears after set_num_threads (scipy brings its own) is limited at
    the next parallel kernel call; the cached threadpoolctl controller is rebuilt for it."""
    from cnnmft import _util

    _threads.set_num_threads(1)
    # pretend a new module arrived: the pools are set again and see every loaded BLAS
    monkeypatch.setitem(sys.modules, "_cnnmft_fake_new_module", types.ModuleType("x"))
    assert _psum(np.ones(8)) == 8.0
    assert _blas_counts() == {1}
    assert _threads._STATE["modules"] == len(sys.modules)
    assert _util._CONTROLLER["modules"] == len(sys.modules)


def _count_kernel(x):
    for i in numba.prange(x.size):
        x[i] = 1.0
    return numba.get_num_threads()


_fine_count = pjit(_count_kernel, cache=False)
_coarse_count = cjit(_count_kernel, cache=False)


def test_coarse_kernels_use_every_cpu_on_a_busy_machine(monkeypatch):
    """Per-layer kernels drop to one thread under load; chunked grids keep every usable CPU
    (a parked thread delays only its chunk). An explicit count applies to both."""
    cpus = min(2, numba.config.NUMBA_NUM_THREADS)
    monkeypatch.setattr(_threads, "available_cpus", lambda: cpus)
    _idle(monkeypatch, load=4.0, running=2)
    x = np.zeros(16)
    assert _fine_count(x) == 1
    assert _coarse_count(x) == cpus
    assert _fine_count(x) == 1  # the two alternate without leaking into each other
    assert _threads.get_num_threads() == 1 and _threads.get_num_threads(coarse=True) == cpus
    _threads.set_num_threads(1)
    assert _coarse_count(x) == 1
    with _threads.limit_threads(1):
        _threads.set_num_threads(None)
        assert _coarse_count(x) == 1


def test_blas_heavy_functions_follow_the_policy(monkeypatch):
    """numpy's QR/SVD run inside the policy: one BLAS thread on a busy machine (OpenBLAS's
    spinning threads made a 512-channel Haar kernel 90x slower there), the BLAS's own default
    on an idle one."""
    seen = []

    @_threads.uses_blas
    def probe():
        seen.append(_blas_counts())

    cpus = _threads._cpus_seen()
    _idle(monkeypatch, load=0.0, running=2 * cpus)
    probe()
    assert seen[-1] == {1}
    if cpus > 1:
        before = _blas_counts()
        _idle(monkeypatch, load=0.0, running=0)
        probe()
        assert seen[-1] == before  # nothing imposed where the policy is every CPU
    from cnnmft import block_orthogonal, conv_singular_values

    assert block_orthogonal.__wrapped__ and conv_singular_values.__wrapped__


def test_machine_wide_load_counts_in_proportion_to_the_cpus_allowed(monkeypatch):
    """A 2-CPU container or binding on a 64-CPU host: the host's load is spread over 64 CPUs,
    so 10 busy processes there leave both of its CPUs free, 40 take about one of them."""
    monkeypatch.setattr(_threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 64)
    _idle(monkeypatch, load=10.0, running=10)
    assert _threads.get_num_threads() == 2
    _idle(monkeypatch, load=40.0, running=40)
    assert _threads.get_num_threads() == 1
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)  # the whole machine
    _idle(monkeypatch, load=1.2, running=0)
    assert _threads.get_num_threads() == 1
