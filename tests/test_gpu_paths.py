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
    assert meta["resolved"] == {"aspp_impl": "taps", "amp": "none", "malloc_tuning": True,
                                "cudnn_benchmark": False, "deterministic": False}
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
