"""Each method's loss terms: names, reference weights, and values worked out by hand."""
import math

import pytest
import torch
from torch import nn

from udaseg.methods import METHODS, build_method, method_defaults
from udaseg.methods.base import Pass
from udaseg.methods.fada import domain_accuracy
from udaseg.models import SegmentorOutput

K, C = 2, 8  # classes, feature channels


class ConstD(nn.Module):
    """A stand-in discriminator whose logits are a fixed value everywhere."""

    def __init__(self, channels, value=0.0, stride=1):
        super().__init__()
        self.channels, self.value, self.stride = channels, value, stride
        self.seen = None

    def forward(self, x):
        self.seen = x
        n, _, h, w = x.shape
        return torch.full((n, self.channels, h // self.stride, w // self.stride), self.value)


def _pass(logits, aux=True, size=(16, 16), labels=None):
    out = SegmentorOutput(logits, logits.clone() if aux else None, torch.randn(1, C, *logits.shape[-2:]))
    return Pass(out, labels, size)


def _method(name, multi_level=True, **cfg):
    return build_method({"name": name, **cfg}, K, C, multi_level)


def test_registry_and_reference_defaults():
    assert set(METHODS) == {"source_only", "bn_control", "target_only", "adaptsegnet", "minent", "advent", "fada", "fgd_ent"}
    assert method_defaults("fada") == {"lambda_seg_aux": 0.1, "lambda_adv": 0.001, "d_weight": 0.5, "temperature": 1.8,
                                       "clip": 0.9, "d_input": "features", "loss_resolution": "feature",
                                       "seg_temperature": 1.0, "lambda_adv_aux": 0.0}
    assert method_defaults("minent")["lambda_ent"] == 0.001 and method_defaults("minent")["lambda_ent_aux"] == 0.0002
    assert method_defaults("adaptsegnet")["lambda_adv"] == 0.001 and method_defaults("adaptsegnet")["lambda_adv_aux"] == 0.0002
    assert method_defaults("fgd_ent")["lambda_ent"] == 0.001


def test_source_losses_main_plus_tenth_aux():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    terms = _method("source_only").source_losses(_pass(torch.zeros(1, K, 4, 4), labels=labels))
    assert {k: w for k, (w, _) in terms.items()} == {"seg": 1.0, "seg_aux": 0.1}
    assert terms["seg"][1].item() == pytest.approx(math.log(2))  # uniform over 2 classes
    single = _method("source_only", multi_level=False).source_losses(_pass(torch.zeros(1, K, 4, 4), aux=False, labels=labels))
    assert set(single) == {"seg"}


def test_fada_seg_temperature_option():
    # logits (1.8, 0) at T = 1.8 become (1, 0): CE for class 0 = ln(1 + e^-1) = 0.3132617
    logits = torch.tensor([1.8, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4).clone()
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    t = _method("fada", seg_temperature=1.8).source_losses(_pass(logits, labels=labels, size=(4, 4)))
    assert t["seg"][1].item() == pytest.approx(0.3132617, abs=1e-6)
    plain = _method("fada").source_losses(_pass(logits, labels=labels, size=(4, 4)))
    assert plain["seg"][1].item() == pytest.approx(math.log(1 + math.exp(-1.8)), abs=1e-6)


def test_fada_adversarial_and_discriminator_terms_by_hand():
    m = _method("fada")
    d = ConstD(2 * K)
    # zero logits: a = softmax(0/1.8) = (½, ½); zero D logits: log-softmax = −ln 4 on all 2K channels
    # L_adv = Σ_k a_k · ln 4 = ln 4; each D term likewise ln 4, weighted 0.5
    tgt = _pass(torch.zeros(1, K, 4, 4))
    terms = m.target_losses(tgt, {"d_fine": d})
    assert {k: w for k, (w, _) in terms.items()} == {"adv_fine": 0.001}
    assert terms["adv_fine"][1].item() == pytest.approx(math.log(4))
    assert d.seen is tgt.out.features  # D sees the layer4 features
    dterms, metrics = m.discriminator_losses(_pass(torch.zeros(1, K, 4, 4)), tgt, {"d_fine": d})
    assert {k: (w, round(v.item(), 6)) for k, (w, v) in dterms.items()} == {
        "d_fine_src": (0.5, round(math.log(4), 6)), "d_fine_tgt": (0.5, round(math.log(4), 6))}
    assert metrics["d_fine_acc"] == 0.0  # exactly ½ mass per half is "not right" for either side


def test_fada_input_resolution_and_softmax_input():
    m = _method("fada", loss_resolution="input", d_input="softmax")
    d = ConstD(2 * K)
    terms = m.target_losses(_pass(torch.zeros(1, K, 4, 4), size=(16, 16)), {"d_fine": d})
    assert d.seen.shape == (1, K, 4, 4) and torch.allclose(d.seen, torch.full_like(d.seen, 0.5))
    assert terms["adv_fine"][1].item() == pytest.approx(math.log(4))
    assert m.build_discriminators()["d_fine"].in_channels == K
    with pytest.raises(ValueError, match="d_input must be 'features' or 'softmax', got 'layer3'"):
        _method("fada", d_input="layer3")


def test_fada_one_fine_grained_d_per_level_in_output_space():
    """lambda_adv_aux > 0 with d_input softmax: a second D reads the aux head, with soft labels from
    the aux head's own softmax (T 1.8: aux logits (1.8, 0) give a = (e/(e+1), 1/(e+1)))."""
    m = _method("fada", d_input="softmax", lambda_adv_aux=0.0002)
    assert {k: d.in_channels for k, d in m.build_discriminators().items()} == {"d_fine": K, "d_fine_aux": K}
    main = torch.zeros(1, K, 4, 4)
    aux = torch.tensor([1.8, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4).clone()
    tgt = Pass(SegmentorOutput(main, aux, torch.randn(1, C, 4, 4)), None, (16, 16))
    discs = {"d_fine": ConstD(2 * K), "d_fine_aux": ConstD(2 * K)}
    terms = m.target_losses(tgt, discs)
    assert {k: w for k, (w, _) in terms.items()} == {"adv_fine": 0.001, "adv_fine_aux": 0.0002}
    assert torch.allclose(discs["d_fine_aux"].seen, torch.softmax(aux, 1))  # the aux head, not the main one
    # constant D logits: L_adv = −Σ_k a_k · log(1/2K) = ln 4 whatever a is (a sums to 1)
    assert terms["adv_fine_aux"][1].item() == pytest.approx(math.log(4))
    # a D that puts its logit 1 on source class 0: log-softmax (1,0,0,0) − log(e+3); the aux
    # level's target is [a; 0] with a = (e/(e+1), 1/(e+1)), so L = log(e+3) − e/(e+1)
    class Peak(ConstD):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 2 * K, *x.shape[-2:])
            out[:, 0] = 1.0
            return out
    terms = m.target_losses(tgt, {"d_fine": ConstD(2 * K), "d_fine_aux": Peak(2 * K)})
    e = math.e
    assert terms["adv_fine_aux"][1].item() == pytest.approx(math.log(e + 3) - e / (e + 1), abs=1e-6)
    dterms, metrics = m.discriminator_losses(tgt, tgt, discs)
    assert set(dterms) == {"d_fine_src", "d_fine_tgt", "d_fine_aux_src", "d_fine_aux_tgt"}
    assert set(metrics) == {"d_fine_acc", "d_fine_aux_acc"}
    # one level when the net has no aux head; refused on layer4 features (no conv4 features exposed)
    assert set(_method("fada", False, d_input="softmax", lambda_adv_aux=0.0002).build_discriminators()) == {"d_fine"}
    with pytest.raises(ValueError, match="lambda_adv_aux > 0 .* needs method.d_input: softmax"):
        _method("fada", lambda_adv_aux=0.0002)


def test_fgd_ent_adds_entropy_with_its_weights():
    m = _method("fgd_ent")
    terms = m.target_losses(_pass(torch.zeros(1, K, 4, 4)), {"d_fine": ConstD(2 * K)})
    assert {k: w for k, (w, _) in terms.items()} == {"adv_fine": 0.001, "ent": 0.001, "ent_aux": 0.0002}
    assert terms["ent"][1].item() == pytest.approx(1.0)  # uniform prediction: normalised entropy 1
    # a confident prediction: p = (e^4/(e^4+1), 1/(e^4+1)) = (.9820138, .0179862);
    # H = .9820138·.0181499 + .0179862·4.0181499 = .0900947 nats; / ln 2 = .1299793
    confident = torch.tensor([4.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4).clone()
    t2 = _method("minent").target_losses(_pass(confident, aux=False), {})
    assert set(t2) == {"ent"}  # no aux output, no aux term
    assert t2["ent"][1].item() == pytest.approx(0.1299793, abs=1e-6)


def test_adaptsegnet_levels_and_bce_by_hand():
    m = _method("adaptsegnet")
    discs = m.build_discriminators()
    assert set(discs) == {"d_main", "d_aux"} and discs["d_main"].in_channels == K
    assert set(_method("adaptsegnet", multi_level=False).build_discriminators()) == {"d_main"}
    d = {"d_main": ConstD(1, value=2.0), "d_aux": ConstD(1, value=0.0)}
    terms = m.target_losses(_pass(torch.zeros(1, K, 4, 4), size=(16, 16)), d)
    # D sees the upsampled softmax; target labelled as source (0): softplus(2) = 2.126928
    assert d["d_main"].seen.shape == (1, K, 16, 16)
    assert {k: w for k, (w, _) in terms.items()} == {"adv_main": 0.001, "adv_aux": 0.0002}
    assert terms["adv_main"][1].item() == pytest.approx(math.log(1 + math.e ** 2), abs=1e-6)
    dterms, metrics = m.discriminator_losses(_pass(torch.zeros(1, K, 4, 4)), _pass(torch.zeros(1, K, 4, 4)), d)
    # source with logit 2 vs label 0: softplus(2); target vs label 1: softplus(−2)
    assert dterms["d_main_src"][1].item() == pytest.approx(math.log(1 + math.e ** 2), abs=1e-6)
    assert dterms["d_main_tgt"][1].item() == pytest.approx(math.log(1 + math.e ** -2), abs=1e-6)
    assert dterms["d_main_src"][0] == 0.5 and metrics["d_main_acc"] == 0.5


def test_advent_feeds_self_information():
    m = _method("advent", multi_level=False)
    d = {"d_main": ConstD(1)}
    m.target_losses(_pass(torch.zeros(1, K, 4, 4), aux=False, size=(8, 8)), d)
    # uniform p = ½: −½·ln ½ / ln 2 = ½ per class
    assert torch.allclose(d["d_main"].seen, torch.full((1, K, 8, 8), 0.5))


def test_control_and_oracle_flags():
    assert not METHODS["source_only"].uses_target_images
    bn = METHODS["bn_control"]
    assert bn.uses_target_images and not bn.target_needs_grad and bn.uses_source
    oracle = METHODS["target_only"]
    assert oracle.uses_target_labels and not oracle.uses_source
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    assert set(_method("target_only").target_losses(_pass(torch.zeros(1, K, 4, 4), labels=labels), {})) == {"seg", "seg_aux"}


def test_domain_accuracy_by_hand():
    # 2 source pixels with source mass .73 and .27, 2 target pixels with source mass .27 and .73
    hi, lo = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 0.0])
    s = torch.stack([hi, lo], -1).view(1, 4, 1, 2)
    t = torch.stack([lo, hi], -1).view(1, 4, 1, 2)
    assert domain_accuracy(s, t, 2) == 0.5
    assert domain_accuracy(s[..., :1], t[..., :1], 2) == 1.0


# each method with its defaults, and with each of these keys it has changed
_VARIANTS = [{"lambda_seg_aux": 0.0}, {"lambda_ent_aux": 0.0}, {"lambda_adv_aux": 0.0}, {"d_input": "softmax"},
             {"d_input": "softmax", "lambda_adv_aux": 0.0002}]
_CASES = [(n, ml, v) for n in sorted(METHODS) for ml in (True, False)
          for v in [{}] + [v for v in _VARIANTS if set(v) <= set(method_defaults(n))]]


@pytest.mark.parametrize("name,multi_level,extra", _CASES)
def test_declared_outputs_of_the_last_backward_are_the_ones_with_gradient(name, multi_level, extra):
    """DDP's find_unused_parameters is derived from what each method declares its last backward
    (target if it has one, else source) differentiates; autograd must agree with the claim."""
    m = _method(name, multi_level, **extra)
    torch.manual_seed(0)
    leaves = {"logits": torch.randn(1, K, 32, 32), "aux_logits": torch.randn(1, K, 32, 32) if multi_level else None,
              "features": torch.randn(1, C, 32, 32)}
    for t in leaves.values():
        if t is not None:
            t.requires_grad_(True)
    p = Pass(SegmentorOutput(**leaves), torch.randint(0, K, (1, 32, 32)), (32, 32))
    discs = {k: d.requires_grad_(False) for k, d in m.build_discriminators().items()}
    target_backward = m.uses_target_images and m.target_needs_grad
    terms = m.target_losses(p, discs) if target_backward else m.source_losses(p)
    sum(w * v for w, v in terms.values()).backward()
    reached = {k for k, t in leaves.items() if t is not None and t.grad is not None and bool(t.grad.abs().sum() > 0)}
    declared = m.target_outputs() if target_backward else m.segmentation_outputs()
    assert reached == declared
    heads = {"logits", "aux_logits"} if multi_level else {"logits"}
    assert m.ddp_find_unused_parameters() == (not heads <= reached)
