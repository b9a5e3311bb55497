"""The CUDA and multi-GPU paths, checked on the CPU (CI has no GPU): which device each rank
uses, what DDP is given, the per-device defaults, the batch split and the CUDA RNG in
checkpoints. Faked where a GPU would be needed; the real runs are benchmarks/gpu_check.py's."""
import json

import pytest
import torch

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine import device_defaults as dd
from udaseg.engine.distributed import DistInfo
from udaseg.engine.builders import per_process_batch, rank_device
from udaseg.engine.trainer import Trainer


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def fake_rank1_gpu(monkeypatch):
    """This process as rank 1 of 2 under torchrun on a machine with CUDA: records what
    ``Module.to``, DDP and ``torch.cuda.set_device`` receive, instead of doing it."""
    import torch.distributed as dist
    import torch.nn.parallel

    seen = {"to": [], "ddp": [], "set_device": []}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: seen["set_device"].append(d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: None)
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: None)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test

    def fake_to(module, *args, **kwargs):
        seen["to"].append((args, kwargs))
        return module

    def fake_ddp(module, **kwargs):
        seen["ddp"].append(kwargs)
        return module

    monkeypatch.setattr(torch.nn.Module, "to", fake_to)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", fake_ddp)
    return seen


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
def test_rank_1_puts_everything_on_its_own_gpu(bench, tmp_path, fake_rank1_gpu):
    seen = fake_rank1_gpu
    t = Trainer(tiny_config(bench, ["method.name=fada", "train.iters=1", "data.batch_size=1"]), tmp_path,
                progress=False)
    cuda1 = torch.device("cuda", 1)
    assert t.dist == DistInfo(rank=1, world_size=2, local_rank=1)
    assert t.device == cuda1 and seen["set_device"] == [1]
    devices = [a[0] for a, _ in seen["to"] if a]
    assert devices and all(torch.device(d) == cuda1 for d in devices), seen["to"]
    # the segmenter (FADA: its classifiers get no target gradient) and the discriminator
    assert seen["ddp"] == [{"device_ids": [1], "find_unused_parameters": True}, {"device_ids": [1]}]
    # CUDA defaults, resolved for the GPU
    assert t.resolved["aspp_impl"] == "dilated_conv" and t.resolved["amp"] == "bf16"
    assert t.resolved["malloc_tuning"] is False and t.resolved["cudnn_benchmark"] is True
    assert torch.backends.cudnn.benchmark is True
    # the sampler shards the stream: rank 1 takes the second image of each global batch
    assert t.loaders["source"].batch_sampler.rank == 1 and t.loaders["source"].batch_sampler.world_size == 2


def test_rank_device_rules():
    two = DistInfo(rank=1, world_size=2, local_rank=1)
    assert rank_device(torch.device("cpu"), two) == torch.device("cpu")
    assert rank_device(torch.device("cuda"), two) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="train.device is cuda:0 but this is rank 1 with LOCAL_RANK 1"):
        rank_device(torch.device("cuda", 0), two)


def test_global_batch_is_split_across_processes():
    assert per_process_batch({"batch_size": 3, "global_batch_size": None}, 4) == 3
    assert per_process_batch({"batch_size": 1, "global_batch_size": 8}, 4) == 2
    with pytest.raises(ValueError, match=r"data.global_batch_size=6 cannot be split evenly across 4 process\(es\)"):
        per_process_batch({"batch_size": 1, "global_batch_size": 6}, 4)
    with pytest.raises(ValueError, match="data.batch_size must be at least 1, got 0"):
        per_process_batch({"batch_size": 0, "global_batch_size": None}, 1)


def test_batch_and_resolved_defaults_are_printed_and_recorded(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["train.iters=1", "train.val_every=0", "data.global_batch_size=2"]), tmp_path,
                progress=False)
    t.train()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["batch_per_process"] == 2 and meta["global_batch"] == 2
    # threads: auto, with OMP_NUM_THREADS=1 set by conftest -> torch's current count, 1
    assert meta["resolved"] == {"aspp_impl": "taps", "amp": "none", "malloc_tuning": True,
                                "cudnn_benchmark": False, "deterministic": False, "threads": 1}
    log = (tmp_path / "train.log").read_text()
    assert "batch per domain: 2 per process x 1 process(es) = 2 global" in log


@pytest.mark.parametrize("value,device,expected", [
    ("auto", "cpu", "taps"), ("auto", "cuda", "dilated_conv"), ("taps", "cuda", "taps"),
    ("dilated_conv", "cpu", "dilated_conv")])
def test_aspp_impl_auto(value, device, expected):
    assert dd.resolve_aspp_impl(value, torch.device(device)) == expected


def test_amp_auto(monkeypatch):
    assert dd.resolve_amp("auto", torch.device("cpu")) == "none"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dd.resolve_amp("auto", torch.device("cuda", 0)) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert dd.resolve_amp("auto", torch.device("cuda", 0)) == "fp16"
    with pytest.raises(ValueError, match="train.amp=fp16 needs CUDA"):
        dd.resolve_amp("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="config key 'train.amp' is 'fp32'; expected one of auto, none, bf16, fp16"):
        dd.resolve_amp("fp32", torch.device("cpu"))


def test_malloc_and_cudnn_auto():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert dd.resolve_malloc_tuning("auto", cpu) is True and dd.resolve_malloc_tuning("auto", gpu) is False
    assert dd.resolve_malloc_tuning(False, cpu) is False
    assert dd.resolve_cudnn_benchmark("auto", gpu, deterministic=False) is True
    assert dd.resolve_cudnn_benchmark("auto", gpu, deterministic=True) is False
    assert dd.resolve_cudnn_benchmark("auto", cpu, deterministic=False) is False


def test_cuda_rng_state_is_saved_and_restored(bench, tmp_path, monkeypatch):
    """On CUDA the checkpoint holds the device's RNG state and resume puts it back (faked: the
    trainer on the CPU, the CUDA RNG calls recorded)."""
    t = Trainer(tiny_config(bench, ["train.iters=1", "train.val_every=0"]), tmp_path, progress=False)
    assert t.state_dict(0)["rng"]["cuda"] is None  # on the CPU: nothing to save
    state = torch.tensor([7, 8, 9], dtype=torch.uint8)
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device=None: calls.append((s, device)))
    t.device = torch.device("cuda", 0)
    saved = t.state_dict(0)
    assert torch.equal(saved["rng"]["cuda"], state)
    t._restore(saved)
    assert len(calls) == 1 and torch.equal(calls[0][0], state) and calls[0][1] == torch.device("cuda", 0)


def test_deterministic_sets_the_cublas_workspace(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    t = Trainer(tiny_config(bench, ["train.iters=1", "train.deterministic=true"]), tmp_path, progress=False)
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert t.resolved["cublas_workspace_config"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()  # conftest resets it after the test


# ------------------------------------------------------------------------------- train.threads

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture
def no_thread_env(monkeypatch):
    """OMP_NUM_THREADS and LOCAL_WORLD_SIZE unset (conftest sets OMP_NUM_THREADS=1 for the suite);
    busy_cores must be faked by the test that reaches it."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    def unexpected(cores, interval=0.25):
        raise AssertionError("busy_cores should not be measured here")

    monkeypatch.setattr(dd, "busy_cores", unexpected)
    return monkeypatch


def _fake_cores(monkeypatch, n_cores, busy, limit=None):
    """``n_cores`` in this process's affinity mask, ``busy`` of them busy, a cgroup quota of
    ``limit`` CPUs (None: none, whatever this machine's /sys/fs/cgroup says)."""
    seen = []

    def fake_busy(cores, interval=0.25):
        seen.append(set(cores))
        return busy

    monkeypatch.setattr(dd.os, "sched_getaffinity", lambda pid: set(range(n_cores)), raising=False)
    monkeypatch.setattr(dd, "busy_cores", fake_busy)
    monkeypatch.setattr(dd, "_cgroup_cpu_limit", lambda: limit)
    return seen


@pytest.mark.parametrize("device", [CPU, GPU])
def test_explicit_threads_are_kept(no_thread_env, device):
    assert dd.resolve_threads(5, device) == 5
    assert dd.resolve_threads(1, device) == 1


@pytest.mark.parametrize("bad", [0, -1, "two", True, 2.0, None])
def test_bad_threads_are_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match=r"config key 'train.threads' is .*; expected a positive integer or auto"):
        dd.resolve_threads(bad, CPU)


def test_auto_threads_keep_an_omp_num_threads_of_the_environment(no_thread_env):
    no_thread_env.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch took from it (conftest restores the count)
    assert dd.resolve_threads("auto", CPU) == 3
    torch.set_num_threads(2)
    assert dd.resolve_threads("auto", CPU) == 2  # torch's current count, not the variable re-read


def test_auto_threads_on_cuda_keep_torchs_count(no_thread_env):
    torch.set_num_threads(2)
    assert dd.resolve_threads("auto", GPU) == 2  # and no /proc/stat sampling (busy_cores would raise)


@pytest.mark.parametrize("cores,busy,world,expected", [
    (4, 1.4, None, 3),  # 4 - 1.4 = 2.6 -> 3
    (4, 1.6, None, 2),  # 2.4 -> 2
    (4, 1.5, None, 3),  # 2.5 rounds up
    (4, 0.0, None, 4),  # a quiet machine: every core
    (2, 1.8, None, 1),  # 0.2 -> at least 1
    (2, 3.0, None, 1),  # negative -> at least 1
    (4, 0.0, "2", 2),  # two processes of one torchrun share the 4 cores
    (8, 1.2, "2", 3),  # 4 - 1.2 = 2.8 -> 3
    (4, 0.0, "", 4),  # an empty LOCAL_WORLD_SIZE counts as 1
])
def test_auto_threads_on_the_cpu_are_the_free_cores(no_thread_env, cores, busy, world, expected):
    if world is not None:
        no_thread_env.setenv("LOCAL_WORLD_SIZE", world)
    seen = _fake_cores(no_thread_env, cores, busy)
    assert dd.resolve_threads("auto", CPU) == expected
    assert seen == [set(range(cores))]  # measured on the cores this process may use


def test_auto_threads_with_an_empty_omp_num_threads_measure(no_thread_env):
    no_thread_env.setenv("OMP_NUM_THREADS", "")
    _fake_cores(no_thread_env, 4, 1.0)
    assert dd.resolve_threads("auto", CPU) == 3


def test_auto_threads_without_sched_getaffinity_use_cpu_count(no_thread_env):
    seen = _fake_cores(no_thread_env, 99, 0.7)
    no_thread_env.delattr(dd.os, "sched_getaffinity")  # not Linux
    no_thread_env.setattr(dd.os, "cpu_count", lambda: 6)
    assert dd.resolve_threads("auto", CPU) == 5  # 6 - 0.7 = 5.3
    assert seen == [set(range(6))]


@pytest.mark.parametrize("cores,busy,limit,world,expected", [
    (16, 3.0, 2, None, 2),  # a --cpus=2 container on a 16-core host: the host's busy cores are not its quota
    (16, 0.0, 4, "2", 2),  # two processes of one torchrun share the quota
    (16, 15.0, 4, None, 1),  # the free cores still cap it
    (2, 0.0, 8, None, 2),  # a quota above the affinity mask changes nothing
])
def test_auto_threads_respect_a_cgroup_cpu_quota(no_thread_env, cores, busy, limit, world, expected):
    if world is not None:
        no_thread_env.setenv("LOCAL_WORLD_SIZE", world)
    _fake_cores(no_thread_env, cores, busy, limit)
    assert dd.resolve_threads("auto", CPU) == expected


@pytest.mark.parametrize("text,expected", [
    ("max 100000\n", None),  # no quota
    ("200000 100000\n", 2),
    ("150000 100000\n", 2),  # 1.5 CPUs: rounded up
    ("50000 100000\n", 1),
    ("garbage\n", None),
    ("", None),
    (None, None),  # no file (cgroup v1, not Linux)
])
def test_cgroup_cpu_limit_reads_cpu_max(tmp_path, monkeypatch, text, expected):
    path = tmp_path / "cpu.max"
    if text is not None:
        path.write_text(text)
    monkeypatch.setattr(dd, "CGROUP_CPU_MAX", str(path))
    assert dd._cgroup_cpu_limit() == expected


def test_resume_keeps_the_thread_count_auto_resolved_to_at_the_start(bench, tmp_path, no_thread_env):
    """train.threads=auto is measured when a run starts; a resume on a busier machine keeps the
    first count (another count sums floats in another order), an explicit integer still wins."""
    from udaseg.engine.checkpoint import load_checkpoint

    cfg = tiny_config(bench, ["train.iters=2", "train.val_every=0", "train.checkpoint_every=1"])
    _fake_cores(no_thread_env, 2, 0.0)  # a quiet 2-core machine: auto = 2
    Trainer(cfg, tmp_path, progress=False).train(stop_at=2)  # last.pt at iteration 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["resolved"]["threads"] == 2
    _fake_cores(no_thread_env, 2, 1.0)  # busier now: auto would be 1
    assert dd.resolve_threads("auto", CPU) == 1
    t = Trainer(cfg, tmp_path, resume=True, progress=False)
    assert t.start_iter == 1 and t.resolved["threads"] == 2 and torch.get_num_threads() == 2
    assert json.loads((tmp_path / "meta.json").read_text())["resolved"]["threads"] == 2
    assert "train.threads=auto: keeping the checkpoint's 2 thread(s) (measured now: 1)" in (
        tmp_path / "train.log").read_text()
    # OMP_NUM_THREADS is the user's choice for auto, but a resume keeps the count too, and says where 1 came from
    no_thread_env.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # what a fresh process started with OMP_NUM_THREADS=1 has
    t = Trainer(cfg, tmp_path, resume=True, progress=False)
    assert t.resolved["threads"] == 2 and torch.get_num_threads() == 2
    assert "keeping the checkpoint's 2 thread(s) (OMP_NUM_THREADS gives 1)" in (tmp_path / "train.log").read_text()
    t.train()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["resolved"]["threads"] == 2
    explicit = tiny_config(bench, ["train.iters=2", "train.val_every=0", "train.checkpoint_every=1", "train.threads=1"])
    t = Trainer(explicit, tmp_path, resume=True, progress=False)
    assert t.resolved["threads"] == 1 and torch.get_num_threads() == 1


PROC_STAT = """\
cpu  60 3 13 240 14 0 1 1 0 0
cpu0 10 1 5 80 4 0 0 0 7 7
cpu1 20 2 8 60 10 0 1 1 0 0
cpu2 30 0 0 100 0 0 0 0 0 0
intr 12345 1 2 3
ctxt 999
btime 1700000000
processes 10
procs_running 2
"""


def _fake_proc_stat(monkeypatch, text):
    import io

    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        if text is None:
            raise FileNotFoundError(path)
        return io.StringIO(text)

    monkeypatch.setattr(dd, "open", fake_open, raising=False)  # shadows the builtin in that module only
    return opened


def test_cpu_times_sum_the_given_cores_of_proc_stat(monkeypatch):
    opened = _fake_proc_stat(monkeypatch, PROC_STAT)
    # cpu0: user..steal 10+1+5+80+4+0+0+0 = 100 (guest columns ignored), busy 100-80-4 = 16
    # cpu1: 20+2+8+60+10+0+1+1 = 102, busy 102-60-10 = 32
    assert dd._cpu_times({0, 1}) == (48.0, 202.0)
    assert dd._cpu_times({2}) == (30.0, 130.0)
    assert dd._cpu_times({0}) == (16.0, 100.0)
    assert dd._cpu_times({0, 1, 2}) == (78.0, 332.0)  # not the aggregate "cpu" line (its own numbers)
    assert dd._cpu_times({5}) is None  # no such core
    assert opened[0] == "/proc/stat"


def test_cpu_times_without_proc_stat(monkeypatch):
    _fake_proc_stat(monkeypatch, None)
    assert dd._cpu_times({0}) is None


def _fake_samples(monkeypatch, samples):
    samples, slept = list(samples), []
    monkeypatch.setattr(dd, "_cpu_times", lambda cores: samples.pop(0))
    monkeypatch.setattr(dd.time, "sleep", lambda s: slept.append(s))
    return slept


def test_busy_cores_from_two_samples(monkeypatch):
    slept = _fake_samples(monkeypatch, [(100.0, 400.0), (250.0, 600.0)])
    assert dd.busy_cores({0, 1}) == pytest.approx(1.5)  # 2 cores x 150 busy / 200 jiffies
    assert slept == [0.25]
    slept = _fake_samples(monkeypatch, [(0.0, 100.0), (40.0, 500.0)])
    assert dd.busy_cores({0, 1, 2, 3}, interval=0.1) == pytest.approx(0.4)  # 4 x 40 / 400
    assert slept == [0.1]


@pytest.mark.parametrize("samples", [[None, (1.0, 2.0)], [(1.0, 2.0), None], [(5.0, 100.0), (5.0, 100.0)],
                                     [(5.0, 100.0), (1.0, 90.0)]])
def test_busy_cores_is_zero_where_it_cannot_be_measured(monkeypatch, samples):
    _fake_samples(monkeypatch, samples)
    assert dd.busy_cores({0, 1}) == 0.0


def test_busy_cores_reads_this_machines_proc_stat():
    import os

    if not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"):
        pytest.skip("no /proc/stat")
    cores = os.sched_getaffinity(0)
    busy, total = dd._cpu_times(cores)
    assert 0 <= busy <= total and total > 0
    assert 0.0 <= dd.busy_cores(cores, interval=0.05) <= len(cores) + 1e-9


def test_trainer_sets_and_records_explicit_threads(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["train.iters=1", "train.val_every=0", "train.threads=2"]), tmp_path,
                progress=False)
    assert t.resolved["threads"] == 2 and torch.get_num_threads() == 2  # conftest restores the count
    assert json.loads((tmp_path / "meta.json").read_text())["resolved"]["threads"] == 2
