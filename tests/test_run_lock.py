"""One writer per run directory, and a clean stop on Ctrl-C / SIGTERM (issue 22): a second
process is refused naming the holder, before it touches anything; a killed holder leaves no stale
lock; a signal finishes the step, saves last.pt, and the resumed run is the uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine import run_lock
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.interrupt import TrainingInterrupted
from udaseg.engine.run_lock import RunDirLockedError
from udaseg.engine.stages import run_training
from udaseg.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = ["train.iters=4", "train.val_every=0", "train.checkpoint_every=1"]

HOLDER = """
import sys, time
from udaseg.engine import run_lock
run_lock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path / 'run'``'s lock."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_holder_and_touches_nothing(bench, tmp_path, holder):
    run, proc = holder
    # what a --resume beside a live run used to delete: the live run's checkpoint being written
    (run / "checkpoints").mkdir()
    temp = run / "checkpoints" / ".last.pt.abc123.tmp"
    temp.write_bytes(b"half a checkpoint")
    for resume in (False, True):
        with pytest.raises(RunDirLockedError, match=rf"in use by process {proc.pid} on .*one run directory takes one writer"):
            Trainer(tiny_config(bench, TINY), run, resume=resume, progress=False)
    with pytest.raises(RunDirLockedError, match=rf"process {proc.pid}"):
        run_training(tiny_config(bench, TINY), run, resume=True, progress=False)
    assert temp.read_bytes() == b"half a checkpoint"
    assert sorted(p.name for p in run.iterdir()) == [".udaseg.lock", "checkpoints"]


def test_the_lock_is_free_once_its_holder_is_killed_and_the_successor_says_so(bench, tmp_path, holder):
    run, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t = Trainer(tiny_config(bench, TINY), run, progress=False)
    assert any(f"took over the lock of process {proc.pid}" in n for n in t.notes)
    t.train()
    assert not run_lock.held(run)  # released when training ended
    assert (run / ".udaseg.lock").read_text() == ""  # a clean release leaves no holder to report
    Trainer(tiny_config(bench, TINY), tmp_path / "again", progress=False).train()


def test_the_lock_is_re_entrant_within_a_process(bench, tmp_path):
    """A paused trainer and a resumed one on the same folder, as the exact-resume tests do."""
    cfg = tiny_config(bench, TINY)
    first = Trainer(cfg, tmp_path, progress=False)
    first.train(stop_at=2)
    assert run_lock.held(tmp_path)
    Trainer(cfg, tmp_path, resume=True, progress=False).train()
    del first


def test_a_signal_finishes_the_step_saves_and_the_resume_is_exact(bench, tmp_path):
    # SIGINT as a foreground job has it (pytest itself may run as a background job, which ignores it)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _signal_finishes_the_step(bench, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_sigint_stays_ignored_and_sigterm_still_stops():
    """``nohup udaseg train … &``: the shell made SIGINT ignored, and a Ctrl-C meant for another
    program must not stop the run; a scheduler's SIGTERM still does, cleanly."""
    from udaseg.engine.interrupt import StopOnSignal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopOnSignal() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def _signal_finishes_the_step(bench, tmp_path):
    cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=5", "train.val_every=0", "train.checkpoint_every=0"])
    full = Trainer(cfg, tmp_path / "full", progress=False).train()
    t = Trainer(cfg, tmp_path / "cut", progress=False)
    step = t.step
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def step_then_ctrl_c(it, batches):  # the signal lands during iteration 2's step
        out = step(it, batches)
        if it == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out
    t.step = step_then_ctrl_c
    with pytest.raises(TrainingInterrupted, match=r"interrupted by SIGINT after iteration 2; saved .*last\.pt") as info:
        t.train()
    assert info.value.exit_code == 130 and info.value.iteration == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # handlers put back
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["iteration"] == 2
    assert not run_lock.held(tmp_path / "cut")
    Trainer(cfg, tmp_path / "cut", resume=True, progress=False).train()
    a, b = load_checkpoint(full["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    for k in a["segmentor"]:
        assert (a["segmentor"][k] == b["segmentor"][k]).all(), k
def test_a_study_stopped_by_a_signal_exits_128_plus_it_in_one_line(capsys):
    from udaseg.engine.interrupt import study_exit_code

    def stopped(at):
        raise TrainingInterrupted(signal.SIGTERM, at, Path("runs/x/checkpoints/last.pt"))
    assert study_exit_code(stopped, 7) == 143
    assert capsys.readouterr().err == ("interrupted by SIGTERM after iteration 7; saved runs/x/checkpoints/last.pt; "
                                       "run the same command again to resume\n")
    assert study_exit_code(lambda: None) == 0
    with pytest.raises(ValueError, match="bad"):  # anything else is not a stop: it propagates
        study_exit_code(lambda: (_ for _ in ()).throw(ValueError("bad")))


def test_an_exception_out_of_train_ends_the_loader_workers(bench, tmp_path):
    """The workers ignore SIGTERM, so while a traceback keeps their iterators alive Python's exit
    (multiprocessing terminates daemonic children with SIGTERM, then joins them) waited for them
    forever: benchmarks/recipe.py hung so after a scheduler's SIGTERM. train() ends them itself."""
    import multiprocessing

    t = Trainer(tiny_config(bench, ["train.iters=5", "train.val_every=0", "data.workers=1"]), tmp_path, progress=False)
    before = set(multiprocessing.active_children())
    step = t.step

    def step_then_fail(it, batches):
        out = step(it, batches)
        if it == 1:
            raise RuntimeError("boom")
        return out
    t.step = step_then_fail
    with pytest.raises(RuntimeError, match="boom") as info:
        t.train()
    assert info.value.__traceback__ is not None  # the traceback (and its frames) is still held here
    assert before, "the trainer's loaders started no worker process"
    assert not before & set(multiprocessing.active_children())  # every worker has ended
    assert all(p.exitcode == 0 for p in before)  # on torch's own shutdown request, not killed


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_to_the_command_saves_prints_the_resume_command_and_exits_143(bench, tmp_path, workers):
    """As a scheduler stops a job: SIGTERM to every process of it, loader workers included (they
    ignore it; one that died of it would make torch abort the run before it saves)."""
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(bench, ["train.iters=400", "train.val_every=0",
                                                           "train.checkpoint_every=0", f"data.workers={workers}"])))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "udaseg", "train", str(cfg_path), "--run-dir", str(run),
                             "train.log_every=1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None and not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # the process group: the command and its loader workers
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    it = load_checkpoint(run / "checkpoints" / "last.pt")["iteration"]
    assert 2 <= it < 400
    assert f"interrupted by SIGTERM after iteration {it}" in err
    assert f"udaseg train {cfg_path} --run-dir {run} train.log_every=1 --resume" in err
    assert "Traceback" not in err
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["start"]
