"""Init weights by name (udaseg.models.weights): cache, download, checksums, errors.

Everything is served by a local ThreadingHTTPServer on 127.0.0.1 (and a closed port for the
offline case); an autouse guard refuses any other host, so no test can reach the internet.
No timing assertions; every request has a generous timeout.
"""
from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from test_models import _caffe_file  # noqa: E402  (tests/ is on sys.path, see conftest.py)
from udaseg.models import (
    PRETRAINED_WEIGHTS,
    PretrainedWeights,
    ResNetBackbone,
    WeightsChecksumError,
    WeightsDownloadError,
    available_pretrained,
    build_segmentor,
    resolve_pretrained,
)
from udaseg.models import weights as W

TIMEOUT = 30.0
PAYLOAD = b"udaseg test weights\n" * 5000  # ~100 kB: several read() calls would be fine, one is too


class _Server:
    """Routes: path -> (body, mode); mode "ok" | "short" (Content-Length > body, then close) | "404"."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.requests.append(self.path)
                body, mode = owner.routes.get(self.path, (b"", "404"))
                if mode == "404":
                    self.send_error(404, "not here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) + (1000 if mode == "short" else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True  # "short": the client sees EOF before Content-Length bytes

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path: str) -> int:
        return self.requests.count(path)


@pytest.fixture
def server():
    s = _Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=TIMEOUT)


@pytest.fixture(autouse=True)
def _offline_guard_and_cache(monkeypatch, tmp_path):
    """Only 127.0.0.1 may be contacted; the cache is a fresh temp dir (UDASEG_CACHE)."""
    real = urllib.request.urlopen

    def guarded(req, *args, **kwargs):
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        assert kwargs.get("timeout") is not None, "every request needs a timeout"
        return real(req, *args, **kwargs)

    monkeypatch.setattr(W.urllib.request, "urlopen", guarded)
    monkeypatch.setenv("UDASEG_CACHE", str(tmp_path / "cache"))


def _entry(monkeypatch, name: str, url: str, sha256: str | None, filename: str = "w.pth", **kw) -> PretrainedWeights:
    spec = PretrainedWeights(url=url, filename=filename, sha256=sha256, layout=kw.get("layout", "caffe"),
                             archs=kw.get("archs", ("deeplabv2_resnet18",)), input_norm=kw.get("input_norm", "caffe"))
    monkeypatch.setitem(PRETRAINED_WEIGHTS, name, spec)
    return spec


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- the table


def test_table_entries():
    assert available_pretrained() == ["deeplab_imagenet", "torchvision_resnet101", "demo_resnet18", "demo_resnet18_world",
                                      *(f"mit_b{i}" for i in range(6))]
    d, t = PRETRAINED_WEIGHTS["deeplab_imagenet"], PRETRAINED_WEIGHTS["torchvision_resnet101"]
    assert d.url == "https://github.com/valeoai/ADVENT/releases/download/v0.1/DeepLab_resnet_pretrained_imagenet.pth"
    assert (d.filename, d.layout, d.archs, d.input_norm) == (
        "DeepLab_resnet_pretrained_imagenet.pth", "caffe", ("deeplabv2_resnet101",), "caffe")
    assert d.sha256 is None  # no published digest
    assert t.url == "https://download.pytorch.org/models/resnet101-5d3b4d8f.pth"
    assert (t.filename, t.layout, t.archs, t.input_norm) == (
        "resnet101-5d3b4d8f.pth", "torchvision", ("deeplabv2_resnet101_tv",), "imagenet")
    assert t.sha256 == "5d3b4d8f" and t.sha256 in t.filename  # torchvision: 8-hex prefix in the name
    for spec in PRETRAINED_WEIGHTS.values():  # downloaded ones name their file in the URL
        assert (spec.url.endswith("/" + spec.filename) if spec.packaged is None else spec.url == "") and spec.source
    demo = PRETRAINED_WEIGHTS["demo_resnet18"]  # shipped in the package (tests/test_pretrain.py verifies it)
    assert (demo.packaged, demo.layout, demo.archs, demo.input_norm) == (
        "models/pretrained/demo_resnet18.pth", "torchvision", ("deeplabv2_resnet18_tv",), "imagenet")
    assert len(demo.sha256) == 64 and demo.rebuild.startswith("udaseg pretrain --out ")
    world = PRETRAINED_WEIGHTS["demo_resnet18_world"]  # benchmark v3's init, also shipped
    assert (world.packaged, world.layout, world.archs, world.input_norm) == (
        "models/pretrained/demo_resnet18_world.pth", "torchvision", ("deeplabv2_resnet18_tv",), "imagenet")
    assert len(world.sha256) == 64 and world.rebuild.startswith("udaseg pretrain --out runs/pretrain/r18_world_3k street_objects=world ")
    for i in range(6):  # MiT encoders: smp's v0.0.2 release .pth (original NVlabs layout), no published digest
        m = PRETRAINED_WEIGHTS[f"mit_b{i}"]
        assert m.url == f"https://github.com/qubvel/segmentation_models.pytorch/releases/download/v0.0.2/mit_b{i}.pth"
        assert (m.filename, m.layout, m.archs, m.input_norm, m.sha256, m.packaged) == (
            f"mit_b{i}.pth", "mit", (f"daformer_mitb{i}", f"segformer_mitb{i}"), "imagenet", None, None)
        assert "segmentation_models.pytorch" in m.source and "v0.0.2" in m.source


# --------------------------------------------------------------------------- download and cache


@pytest.mark.parametrize("digest_len", [64, 8])  # full digest, torchvision-style prefix
def test_good_checksum_cached_atomically_and_downloaded_once(server, monkeypatch, tmp_path, digest_len):
    server.routes["/w.pth"] = (PAYLOAD, "ok")
    _entry(monkeypatch, "tiny", server.url("/w.pth"), hashlib.sha256(PAYLOAD).hexdigest()[:digest_len])
    path = resolve_pretrained("tiny", "deeplabv2_resnet18", timeout=TIMEOUT)
    assert path == tmp_path / "cache" / "w.pth" and path.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "cache") == ["w.pth"]  # no .part left
    assert server.count("/w.pth") == 1
    assert resolve_pretrained("tiny", "deeplabv2_resnet18", timeout=TIMEOUT) == path
    assert server.count("/w.pth") == 1  # verified from the cache, not fetched again


def test_bad_checksum_leaves_nothing(server, monkeypatch, tmp_path):
    server.routes["/w.pth"] = (PAYLOAD, "ok")
    wrong = "ab" * 32
    _entry(monkeypatch, "tiny", server.url("/w.pth"), wrong)
    with pytest.raises(WeightsChecksumError) as e:
        resolve_pretrained("tiny", timeout=TIMEOUT)
    msg = str(e.value)
    assert wrong in msg and hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert server.url("/w.pth") in msg and str(tmp_path / "cache" / "w.pth") in msg
    assert _leftovers(tmp_path / "cache") == []  # neither w.pth nor .w.pth.*.part


def test_interrupted_transfer_leaves_nothing(server, monkeypatch, tmp_path):
    server.routes["/w.pth"] = (PAYLOAD, "short")  # Content-Length says 1000 bytes more, then EOF
    _entry(monkeypatch, "tiny", server.url("/w.pth"), hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(WeightsDownloadError, match=r"incomplete|interrupted") as e:
        resolve_pretrained("tiny", timeout=TIMEOUT)
    assert server.url("/w.pth") in str(e.value) and str(tmp_path / "cache" / "w.pth") in str(e.value)
    assert _leftovers(tmp_path / "cache") == []


def test_http_error(server, monkeypatch, tmp_path):
    _entry(monkeypatch, "tiny", server.url("/missing.pth"), None)
    with pytest.raises(WeightsDownloadError, match="HTTP 404") as e:
        resolve_pretrained("tiny", timeout=TIMEOUT)
    assert str(tmp_path / "cache" / "w.pth") in str(e.value)
    assert _leftovers(tmp_path / "cache") == []


def test_unreachable_server_says_what_to_download_where(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/DeepLab_resnet_pretrained_imagenet.pth"
    monkeypatch.setitem(PRETRAINED_WEIGHTS, "deeplab_imagenet",
                        dataclasses.replace(PRETRAINED_WEIGHTS["deeplab_imagenet"], url=url))
    with pytest.raises(WeightsDownloadError) as e:
        resolve_pretrained("deeplab_imagenet", "deeplabv2_resnet101", timeout=TIMEOUT)
    msg = str(e.value)
    assert url in msg and "DeepLab_resnet_pretrained_imagenet.pth" in msg
    assert str(tmp_path / "cache" / "DeepLab_resnet_pretrained_imagenet.pth") in msg
    assert "model.pretrained" in msg  # or point it at a local copy
    assert _leftovers(tmp_path / "cache") == []


def test_unknown_checksum_warns_with_digest_and_caches(server, monkeypatch):
    server.routes["/w.pth"] = (PAYLOAD, "ok")
    _entry(monkeypatch, "tiny", server.url("/w.pth"), None)
    with pytest.warns(UserWarning, match=hashlib.sha256(PAYLOAD).hexdigest()):
        path = resolve_pretrained("tiny", timeout=TIMEOUT)
    assert path.read_bytes() == PAYLOAD
    assert resolve_pretrained("tiny", timeout=TIMEOUT) == path and server.count("/w.pth") == 1
    # a digest given by the caller (model.pretrained_sha256) replaces the table's: a mismatch refetches
    with pytest.warns(UserWarning, match="downloading it again"), pytest.raises(WeightsChecksumError):
        resolve_pretrained("tiny", sha256="0" * 64, timeout=TIMEOUT)
    assert path.read_bytes() == PAYLOAD  # the cached copy is not replaced by a failed download


def test_corrupt_cached_file_is_downloaded_again(server, monkeypatch, tmp_path):
    server.routes["/w.pth"] = (PAYLOAD, "ok")
    _entry(monkeypatch, "tiny", server.url("/w.pth"), hashlib.sha256(PAYLOAD).hexdigest())
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "w.pth").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="downloading it again"):
        path = resolve_pretrained("tiny", timeout=TIMEOUT)
    assert path.read_bytes() == PAYLOAD and server.count("/w.pth") == 1


def test_udaseg_cache_env_and_default(server, monkeypatch, tmp_path):
    server.routes["/w.pth"] = (PAYLOAD, "ok")
    _entry(monkeypatch, "tiny", server.url("/w.pth"), hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setenv("UDASEG_CACHE", str(tmp_path / "elsewhere" / "deep"))  # created if missing
    assert resolve_pretrained("tiny", timeout=TIMEOUT) == tmp_path / "elsewhere" / "deep" / "w.pth"
    monkeypatch.delenv("UDASEG_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "udaseg" and W.cache_dir().is_dir()
    # an explicit URL (mirror) and directory override the table and the environment
    server.routes["/mirror.pth"] = (PAYLOAD, "ok")
    path = W.download_weights("tiny", url=server.url("/mirror.pth"), directory=tmp_path / "d", timeout=TIMEOUT)
    assert path == tmp_path / "d" / "w.pth" and server.count("/mirror.pth") == 1


# --------------------------------------------------------------------------- names, paths, archs


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        resolve_pretrained("deeplab_imagenett")
    assert "deeplab_imagenett" in str(e.value) and "existing path" in str(e.value)
    assert all(n in str(e.value) for n in available_pretrained())
    with pytest.raises(FileNotFoundError, match="torchvision_resnet101"):
        build_segmentor("deeplabv2_resnet18", 4, pretrained=tmp_path / "nowhere.pth")


def test_existing_path_is_used_as_is(tmp_path):
    f = tmp_path / "deeplab_imagenet"  # an existing path wins over a name
    f.write_bytes(b"x")
    assert resolve_pretrained(f) == f
    assert W.is_pretrained_name("deeplab_imagenet") and not W.is_pretrained_name(f)


def test_name_with_wrong_arch_or_norm(server):
    with pytest.raises(ValueError, match=r"'deeplab_imagenet'.*deeplabv2_resnet101.*not 'deeplabv2_resnet50'"):
        resolve_pretrained("deeplab_imagenet", "deeplabv2_resnet50")
    with pytest.raises(ValueError, match=r"not 'deeplabv2_resnet101_tv'.*use 'torchvision_resnet101'"):
        build_segmentor("deeplabv2_resnet101_tv", 19, pretrained="deeplab_imagenet")
    with pytest.raises(ValueError, match=r"use 'deeplab_imagenet'"):
        resolve_pretrained("torchvision_resnet101", "deeplabv2_resnet101")
    with pytest.raises(ValueError, match=r"expect model.input_norm='imagenet', got 'caffe'"):
        resolve_pretrained("torchvision_resnet101", "deeplabv2_resnet101_tv", input_norm="caffe")
    assert server.requests == []  # refused before any download


# --------------------------------------------------------------------------- end to end


def test_build_segmentor_by_name_end_to_end(server, monkeypatch, tmp_path):
    sd = _caffe_file(ResNetBackbone(18, "caffe"), with_nbt=False)  # ADVENT's layout, R18-sized
    torch.save(sd, tmp_path / "served.pth")
    data = (tmp_path / "served.pth").read_bytes()
    server.routes["/DeepLab_r18.pth"] = (data, "ok")
    _entry(monkeypatch, "deeplab_r18", server.url("/DeepLab_r18.pth"), hashlib.sha256(data).hexdigest(),
           filename="DeepLab_r18.pth")
    model = build_segmentor("deeplabv2_resnet18", 19, pretrained="deeplab_r18", input_norm="caffe")
    assert model.init_report.layout == "caffe"
    assert model.init_report.path == str(tmp_path / "cache" / "DeepLab_r18.pth")
    assert torch.equal(model.backbone.conv1.weight, sd["Scale.conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, sd["Scale.layer4.1.bn2.running_var"])
    assert sorted(model.init_report.skipped) == sorted(k for k in sd if k.startswith("Scale.layer5."))
    build_segmentor("deeplabv2_resnet18", 19, pretrained="deeplab_r18")
    assert server.count("/DeepLab_r18.pth") == 1  # the second build used the cache
    # model.pretrained_sha256 pins the digest of a named file too
    with pytest.warns(UserWarning, match="downloading it again"), pytest.raises(WeightsChecksumError):
        build_segmentor("deeplabv2_resnet18", 19, pretrained="deeplab_r18", pretrained_sha256="1" * 64)
    with pytest.raises(ValueError, match="input_norm"):
        build_segmentor("deeplabv2_resnet18", 19, pretrained="deeplab_r18", input_norm="imagenet")


def test_named_mit_weights_load_strictly_through_the_cache(server, monkeypatch, tmp_path):
    """build_segmentor("daformer_mitb5", pretrained="mit_b5"): served once (the table's entry with
    its URL pointed at the local server), cached as mit_b5.pth, loaded strictly by
    load_mit_pretrained (head.* skipped); no digest is known, so the download warns with it."""
    from udaseg.models import build_mit

    torch.manual_seed(0)
    sd = {k: v.half() for k, v in build_mit("mit_b5").state_dict().items()}  # half: a smaller file
    sd["head.weight"], sd["head.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # the ImageNet classifier
    torch.save(sd, tmp_path / "served.pth")
    data = (tmp_path / "served.pth").read_bytes()
    server.routes["/mit_b5.pth"] = (data, "ok")
    spec = PRETRAINED_WEIGHTS["mit_b5"]
    monkeypatch.setitem(PRETRAINED_WEIGHTS, "mit_b5", dataclasses.replace(spec, url=server.url("/mit_b5.pth")))
    with pytest.warns(UserWarning, match=hashlib.sha256(data).hexdigest()):
        model = build_segmentor("daformer_mitb5", 19, multi_level=False, pretrained="mit_b5")
    r = model.init_report
    assert (r.layout, r.path, r.missing, r.unexpected, r.skipped) == (
        "mit", str(tmp_path / "cache" / "mit_b5.pth"), [], [], ["head.bias", "head.weight"])
    assert torch.equal(model.backbone.block3[39].attn.kv.weight, sd["block3.39.attn.kv.weight"].float())
    model = build_segmentor("segformer_mitb5", 19, pretrained="mit_b5", input_norm="imagenet")
    assert model.init_report.path == r.path and server.count("/mit_b5.pth") == 1  # the cache, not a second fetch
    with pytest.raises(ValueError, match=r"'mit_b5'.*daformer_mitb5 / segformer_mitb5.*not 'daformer_mitb0'.*"
                                         r"use 'mit_b0'"):
        build_segmentor("daformer_mitb0", 19, pretrained="mit_b5")
    with pytest.raises(ValueError, match="expect model.input_norm='imagenet'"):
        build_segmentor("daformer_mitb5", 19, pretrained="mit_b5", input_norm="caffe")
    with pytest.raises(ValueError, match=r"not 'deeplabv2_resnet101'.*use 'deeplab_imagenet'"):
        build_segmentor("deeplabv2_resnet101", 19, pretrained="mit_b5")


def test_named_mit_weights_offline_say_which_file_goes_where(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mit_b0.pth"
    monkeypatch.setitem(PRETRAINED_WEIGHTS, "mit_b0", dataclasses.replace(PRETRAINED_WEIGHTS["mit_b0"], url=url))
    with pytest.raises(WeightsDownloadError) as e:
        build_segmentor("daformer_mitb0", 19, multi_level=False, pretrained="mit_b0")
    msg = str(e.value)
    assert url in msg and str(tmp_path / "cache" / "mit_b0.pth") in msg and "model.pretrained" in msg
    assert _leftovers(tmp_path / "cache") == []
