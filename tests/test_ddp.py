"""DDP on the CPU (gloo): 2 processes × batch 1 train as 1 process × batch 2, and validation
shards the split and all-reduces the confusion matrix.

Why the training comparison runs in float64. 1 and 2 processes compute the same mathematical
gradients with other float summation orders (other kernel blockings for batch 1 and batch 2,
chosen per CPU: oneDNN picks them by ISA). In float32 that noise is ~1e-6 of a gradient at the
same weights, but a random-init net turns it into differences no tolerance can tell from a bug:
a pre-activation within the noise of 0 flips a ReLU or a max-pool choice, an argmax pseudo-label
of a near-uniform softmax flips, and after a step the weights differ and compound it. Measured
on an Intel Xeon with AMX, 1 thread (2026-12-05), with this test's data: FADA's gradients after
3 steps 2.5% apart (the old float32 test's 1% failed there, and passed on AVX2 by chance),
self-training's 6% — as much with BN statistics estimated on the data, so normalised activations
do not cure it — and 3.8e-3 even at unchanged weights (every LR 0) where a max-pool choice
flipped; ``benchmarks/ddp_noise.py`` measures the same on its own data (FADA 3.8% at iteration 3
on AMX, 0.24% with ONEDNN_MAX_CPU_ISA=AVX2; BENCHMARKS.md "DDP"). In float64 the noise is ~1e-16
and a flip needs a value within 1e-16 of a kink: measured ≤ 7e-16 for the gradients of all 3
iterations and ≤ 5.2e-14 of the change for the weights after them.

DDP's logic — buckets, no_sync, unused parameters, averaging, per-rank samples, the teacher's EMA —
does not depend on the dtype. The tolerance, TOL = 1e-9 of a tensor's largest entry, is 10^6 above
that noise and far below any bug: gradients summed instead of averaged are 100% off, and a rank's
own gradient (no all-reduce at all) is off by ≥ 3.5e-3 in every tensor (measured; asserted ≥ POWER).
Float32's tolerances had hidden a real bug this way: the CPU's ASPP summed its biases so that
their gradients shared one buffer and a step's second backward pass counted 4 times — 5.5e-4 of
the gradient, read as "cancelling sums" (tests/test_models.py now checks accumulation exactly).
Both ranks must also end bit-identical (same kernels, same averaged gradients: exact on any CPU).
"""
import hashlib
import os
import socket
from pathlib import Path

import pytest
import torch

from fixtures import make_cityscapes, tiny_benchmark, tiny_config
from udaseg.engine.trainer import Trainer

TOL = 1e-9  # of a tensor's largest entry, in float64; the module docstring derives it
POWER = 1e-4  # the least a rank's own gradient must differ from the average, in every tensor (10^5 × TOL)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    # each source image its own label map, so that the samples' gradients differ (the test's power)
    return tiny_benchmark(tmp_path_factory.mktemp("bench"), vary_labels=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grads(t) -> dict:
    out = {f"segmentor.{n}": p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None}
    out.update({f"discriminators.{n}": p.grad.clone() for n, p in t.discs.named_parameters() if p.grad is not None})
    return out


def _weights(t) -> dict:
    """The float tensors a step changes: the segmenter's and the discriminators'."""
    return {f"{key}.{k}": v.clone() for key, m in (("segmentor", t.model), ("discriminators", t.discs))
            for k, v in m.state_dict().items() if v.is_floating_point()}


def _digest(t, it: int) -> dict:
    """SHA-256 of every tensor of the checkpoint state (weights, teacher, optimiser moments)."""
    out = {}

    def walk(prefix, obj):
        if isinstance(obj, torch.Tensor):
            out[prefix] = hashlib.sha256(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}.{i}", v)

    state = t.state_dict(it)
    for key in ("segmentor", "discriminators", "teacher", "opt_g", "opt_d"):
        walk(key, state[key])
    return out


def _compare(ref: dict, got: dict) -> dict:
    """Per tensor: (largest |difference|, largest |entry| of ``ref``)."""
    assert ref.keys() == got.keys()
    return {k: (float((ref[k] - got[k]).abs().max()), float(ref[k].abs().max())) for k in ref}


def _train_worker(rank, world, port, cfg, run_dir, out_file, reference):
    """One float64 training process on one intra-op thread (``world`` 1: no process group).
    Records each iteration's gradients (under DDP the averaged ones the optimisers step with, and
    this rank's own before the all-reduce) and the weights at the end. DDP rank 0 compares with
    the single process's ``reference`` record here, so the files the test reads stay small."""
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # weights, and inputs (normalize_images) in float64
    t = Trainer(cfg, run_dir, progress=False)
    rec = {"init": _weights(t), "grads": [], "local": [], "buckets": []}
    local = {}
    if world > 1:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        names = {id(p): f"segmentor.{n}" for n, p in t.model.named_parameters()}
        names.update({id(p): f"discriminators.{n}" for n, p in t.discs.named_parameters()})

        def recording_hook(count_buckets: bool):
            def hook(state, bucket):  # this rank's own gradients, then DDP's all-reduce
                if count_buckets:
                    rec["buckets"].append((t._iter, bucket.index()))
                for p, g in zip(bucket.parameters(), bucket.gradients()):
                    local[names[id(p)]] = g.detach().clone()
                return allreduce_hook(state, bucket)
            return hook

        t.model_ddp.register_comm_hook(None, recording_hook(True))  # the segmenter's buckets are counted
        for d in t.discs_ddp.values():
            d.register_comm_hook(None, recording_hook(False))
    step = t.step

    def recording_step(it, batches):
        local.clear()
        out = step(it, batches)
        rec["grads"].append(_grads(t))
        rec["local"].append(dict(local))
        return out
    t.step = recording_step
    t.train()
    rec["final"] = _weights(t)
    if world == 1:
        torch.save(rec, out_file)
    else:
        out = {"digest": _digest(t, t.cfg["train"]["iters"]), "buckets": rec["buckets"]}
        if rank == 0:
            ref = torch.load(reference, weights_only=True)
            out["grads"] = [_compare(r, g) for r, g in zip(ref["grads"], rec["grads"])]
            out["local"] = [_compare({k: g[k] for k in loc}, loc) for g, loc in zip(rec["grads"], rec["local"])]
            out["final"] = _compare(ref["final"], rec["final"])
            out["change"] = _compare(ref["final"], ref["init"])
        torch.save(out, f"{out_file}.{rank}")
        torch.distributed.destroy_process_group()


def _spawn(cfg, world, run_dir, out_file, reference=None):
    torch.multiprocessing.spawn(_train_worker, args=(world, _free_port(), cfg, run_dir, out_file, reference),
                                nprocs=world, join=True)
    if world == 1:
        return torch.load(out_file, weights_only=True)
    return [torch.load(f"{out_file}.{r}", weights_only=True) for r in range(world)]


@pytest.mark.parametrize("method,batch,extra", [
    ("fgd_ent", "data.batch_size=1", []), ("fada", "data.global_batch_size=2", []),
    ("source_only", "data.batch_size=1", []),
    ("source_only", "data.batch_size=1", ["self_training.enabled=true", "self_training.mic.enabled=true",
                                          "self_training.mic.block_size=8"])])
def test_ddp_two_processes_equal_one_process(bench, tmp_path, method, batch, extra):
    """2 gloo processes × batch 1 == 1 process × batch 2 (float64): the same gradients at each of
    3 iterations (DDP averages them), the same weights after them, both ranks in lockstep. Every
    run is a fresh spawned process, so nothing the test process did (threads, flags, allocator)
    reaches it. The discriminator uses SGD, as Adam's first steps (~lr·sign(g)) would show only
    the sign of a near-zero gradient.

    fgd_ent: the source backward runs under no_sync, all heads are reached by the target backward;
    fada: its target backward reaches no classifier (find_unused_parameters), so the classifiers'
    source gradients, accumulated under no_sync, must still be averaged; given as a global batch
    of 2 split over the processes; source_only: one backward, synchronised; source_only with
    self-training (DACS + MIC): three backwards, the last two on mixed and masked images drawn
    per sample, the teacher an EMA on each rank."""
    base = [f"method.name={method}", "train.iters=3", "train.val_every=0", "model.bn_mode=frozen",
            "train.optimizer_d=sgd", "data.source.transforms={resize: [64, 32], hflip: 0.5}", *extra]
    _spawn(tiny_config(bench, [*base, "data.batch_size=2"]), 1, tmp_path / "single", tmp_path / "single.pt")
    ddp, rank1 = _spawn(tiny_config(bench, [*base, batch]), 2, tmp_path / "ddp", tmp_path / "ddp.pt",
                        tmp_path / "single.pt")

    # one all-reduce of the segmenter's gradients per iteration: each bucket reduced once in each
    # (DDP re-buckets after the first iteration, so the bucket count may change after it)
    per_iter = {}
    for it, index in ddp["buckets"]:
        per_iter.setdefault(it, []).append(index)
    assert sorted(per_iter) == [0, 1, 2]
    assert all(len(ix) == len(set(ix)) for ix in per_iter.values()), per_iter

    assert len(ddp["grads"]) == 3
    for it, (averaged, own) in enumerate(zip(ddp["grads"], ddp["local"]), 1):
        assert len(averaged) >= 36  # R18 + heads (+ D)
        for k, (diff, scale) in averaged.items():
            assert diff <= TOL * scale, f"iteration {it}: gradient of {k} differs by {diff:.3g} (largest {scale:.3g})"
        # the test's power: a rank's own gradient, what a missing all-reduce would step with
        assert own.keys() == averaged.keys()
        for k, (diff, scale) in own.items():
            assert diff >= POWER * scale, f"iteration {it}: {k}: a rank's own gradient is only {diff / scale:.3g} " \
                                          f"off the average; the test could not see it unsynchronised"
    for k, (diff, _) in ddp["final"].items():
        change = ddp["change"][k][0]
        assert diff <= TOL * max(change, 1e-6), f"{k} differs by {diff:.3g} after 3 steps, which moved it {change:.3g}"
    # both ranks hold the same weights, teacher and optimiser state, bit for bit
    assert ddp["digest"].keys() == rank1["digest"].keys() and len(ddp["digest"]) >= 100
    differ = [k for k, h in ddp["digest"].items() if rank1["digest"][k] != h]
    assert not differ, f"the ranks diverged in {differ[:5]}"


def _val_worker(rank, world, port, cfg, out_file):
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    t = Trainer(cfg, Path(out_file).with_suffix(""), progress=False)
    result = t.evaluate()
    names = [n for b in t._val_loader for n in b["name"]]
    torch.save({"iou": torch.as_tensor(result.iou), "n": result.num_images, "names": names,
                "fractions": torch.as_tensor(result.predicted_fractions)}, f"{out_file}.{rank}")
    if world > 1:
        torch.distributed.destroy_process_group()


def test_ddp_validation_shards_the_split_and_sums_the_confusion_matrix(tmp_path):
    """3 val images over 2 ranks: rank 0 takes 2, rank 1 takes 1 (no padding duplicate), and the
    all-reduced confusion matrix gives exactly the 1-process result (integer counts)."""
    bench = tiny_benchmark(tmp_path / "bench")
    make_cityscapes(bench / "cs", "val", cities=("e",), h=32, w=64)  # a 3rd val image
    cfg = tiny_config(bench, ["train.iters=1", "method.name=source_only"])
    runs = {}
    for world in (1, 2):
        out = tmp_path / f"w{world}"
        torch.multiprocessing.spawn(_val_worker, args=(world, _free_port(), cfg, str(out)), nprocs=world, join=True)
        runs[world] = [torch.load(f"{out}.{r}", weights_only=False) for r in range(world)]
    one, (r0, r1) = runs[1][0], runs[2]
    assert len(one["names"]) == 3 and len(r0["names"]) == 2 and len(r1["names"]) == 1
    assert sorted(r0["names"] + r1["names"]) == sorted(one["names"])
    for r in (r0, r1):  # every rank holds the reduced result
        assert r["n"] == 3
        assert torch.equal(r["fractions"], one["fractions"])
        assert torch.allclose(r["iou"], one["iou"], equal_nan=True, rtol=0, atol=0)
