"""Training components (``udaseg.engine.component``) plug into any method through their hooks:
a probe component registered here — never named by the trainer — adds a source term, a pass, a
metric and checkpoint state, and runs under three methods; its state survives an exact resume."""
import pytest
import torch

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine import components
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.component import Component
from udaseg.engine.run_logger import read_metrics
from udaseg.engine.stages import run_training, stage_configs
from udaseg.engine.trainer import Trainer


class Probe(Component):
    key, checkpoint_key = "probe", "probe_state"
    needs_target_images = True

    def __init__(self, weight: float):
        self.weight = weight
        self.steps = torch.zeros((), dtype=torch.int64)  # its checkpointed state: steps seen

    @classmethod
    def from_config(cls, cfg, model):
        return cls(cfg["probe"]["weight"])

    @classmethod
    def check_config(cls, cfg):
        if cfg["probe"]["weight"] < 0:
            raise ValueError(f"config key 'probe.weight' is {cfg['probe']['weight']}; expected ≥ 0")

    def before_step(self, student, it):
        assert int(self.steps) == it  # called once per iteration, before its passes, resumed too
        self.steps += 1

    def source_terms(self, src, batch):
        return {"probe_src": (self.weight, src.out.logits.float().pow(2).mean())}

    def passes(self, ctx):
        def probe_pass():
            out = ctx.forward(ctx.student, ctx.batches["target"]["image"].float())
            return {"probe_tgt": (self.weight, out.logits.float().mean())}
        return [probe_pass]

    def ddp_unused_parameters(self, model):
        return True

    def metrics(self):
        return {"probe_steps": float(self.steps)}

    def state_dict(self):
        return {"steps": self.steps.clone()}

    def load_state_dict(self, state):
        self.steps = state["steps"].clone()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(components.COMPONENTS, "probe", Probe)


def config(bench, *over, weight=0.5, enabled=True):
    cfg = tiny_config(bench, ["train.val_every=0", "train.checkpoint_every=2", *over])
    cfg["probe"] = {"enabled": enabled, "weight": weight}
    return cfg


@pytest.mark.parametrize("method", ["source_only", "fgd_ent", "fada"])
def test_a_component_runs_with_any_method(bench, tmp_path, probe, method):
    cfg = config(bench, f"method.name={method}", "train.iters=2")
    t = Trainer(cfg, tmp_path / "a", progress=False)
    names = [f.__name__ for f in t.stepper.segmenter_passes(t._next_batches(), 0, {})]
    assert names[-1] == "probe_pass" and names[0] == "source"  # after the method's own passes
    assert "target" in t.loaders  # needs_target_images, even for source_only
    t = Trainer(cfg, tmp_path / "a", progress=False, overwrite=True)
    t.train()
    train = [r for r in read_metrics(tmp_path / "a") if r["kind"] == "train"]
    assert [r["probe_steps"] for r in train] == [1.0, 2.0]
    assert all(r["probe_src"] > 0 and "probe_tgt" in r for r in train)
    state = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    assert int(state["probe_state"]["steps"]) == 2 and state["teacher"] is None
    # its terms reach the backward: weight 0 trains other weights than weight 0.5
    zero = Trainer(config(bench, f"method.name={method}", "train.iters=2", weight=0.0), tmp_path / "z", progress=False)
    zero.train()
    assert any(not torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), zero.model.state_dict().values())
               if a.is_floating_point())


def test_component_state_resumes_exactly(bench, tmp_path, probe):
    cfg = config(bench, "method.name=fgd_ent", "train.iters=4")
    full = Trainer(cfg, tmp_path / "full", progress=False).train()
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=3)  # killed after 3, last.pt at 2
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert int(resumed.components[0].steps) == 2
    resumed.train()
    a, b = load_checkpoint(full["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert int(b["probe_state"]["steps"]) == 4
    for k in a["segmentor"]:
        assert torch.equal(a["segmentor"][k], b["segmentor"][k]), k


def test_resuming_without_the_components_state_names_it(bench, tmp_path, probe):
    Trainer(config(bench, "train.iters=2", enabled=False), tmp_path, progress=False).train()
    with pytest.raises(ValueError, match=r"last\.pt: it has no 'probe_state' entry, the state of probe, which the "
                                         r"config enables"):
        Trainer(config(bench, "train.iters=4"), tmp_path, resume=True, progress=False, allow_config_change=True)


def test_the_config_is_checked_before_stage_one_and_stage_one_runs_without_it(bench, tmp_path, probe, monkeypatch):
    with pytest.raises(ValueError, match="config key 'probe.weight' is -1"):
        run_training(config(bench, "train.iters=2", "train.pretrain_iters=2", weight=-1), tmp_path, progress=False)
    assert not (tmp_path / "source_only").exists()
    stages = stage_configs(config(bench, "method.name=source_only", "train.iters=2", "train.pretrain_iters=2"))
    assert len(stages) == 1  # the probe does not adapt: source_only with it stays one stage
    monkeypatch.setattr(Probe, "adapts", True)
    (sub, first), (_, second) = stage_configs(config(bench, "method.name=source_only", "train.iters=2",
                                                     "train.pretrain_iters=2"))
    assert sub == "source_only" and first["probe"]["enabled"] is False and second["probe"]["enabled"] is True


def test_the_last_backward_decides_ddp_unused_parameters():
    class Method:
        def __init__(self, unused):
            self.unused = unused

        def ddp_find_unused_parameters(self):
            return self.unused

    class Model:
        multi_level = True

    class Quiet(Component):  # no passes: the method's pass stays the last
        pass

    st = components.COMPONENTS["self_training"].__new__(components.COMPONENTS["self_training"])
    assert components.ddp_unused_parameters([], Method(True), Model()) is True
    assert components.ddp_unused_parameters([Quiet()], Method(False), Model()) is False
    assert components.ddp_unused_parameters([st], Method(False), Model()) is True  # its pass skips the aux head
    Model.multi_level = False
    assert components.ddp_unused_parameters([st, Quiet()], Method(True), Model()) is False
