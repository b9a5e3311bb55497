"""Init weights by name: ``model.pretrained: deeplab_imagenet`` instead of a local path.

    path = resolve_pretrained("deeplab_imagenet", arch="deeplabv2_resnet101")  # cached file
    model = build_segmentor("deeplabv2_resnet101", 19, pretrained="deeplab_imagenet")  # same thing

A value of ``model.pretrained`` that names an existing file is used as it is (an existing path
wins over a name); otherwise it must be a key of ``PRETRAINED_WEIGHTS``. A *packaged* name
(``demo_resnet18``, ``demo_resnet18_world``: weights made by ``udaseg pretrain`` and shipped inside the package) resolves to
its file under ``udaseg/``, verified against its full SHA-256; a missing or altered file is an
error that gives the command that rebuilds it. Any other name resolves to
``<cache>/<file name>``, cache = ``$UDASEG_CACHE`` or ``~/.cache/udaseg``. A cached file whose
checksum verifies is used; otherwise the file is downloaded once (standard-library HTTP, with a
timeout), streamed into ``<cache>/.<file name>.*.part``, verified, and moved into place with
``os.replace`` — a failed or interrupted transfer or a bad checksum leaves nothing at the final
name and removes the partial file. Offline, the error says which file to fetch from where, and
where to put it.

Checksums: ``sha256`` in the table is either a full 64-hex SHA-256 or a hex *prefix* (the
torchvision convention: ``resnet101-5d3b4d8f.pth`` = first 8 hex digits of the file's SHA-256,
which ``torch.hub`` checks the same way), or ``None`` when no digest is published. With ``None``
the download is accepted with a warning that prints the digest it got, to be pinned with
``model.pretrained_sha256`` (which, when given, replaces the table's value).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from .deeplabv2 import sha256sum

# SHA-256 of the shipped udaseg/models/pretrained/demo_resnet18*.pth (tests/test_pretrain.py checks them)
DEMO_RESNET18_SHA256 = "43b2347ec6c68e0a9f9fa9b41a6fc33773cb41bb8cb6a358e0b3ec7286e9e062"
DEMO_RESNET18_WORLD_SHA256 = "7282dc77445545fdda81085e71ebe4c0827e2e1b00d9c286de59515795232b66"
CACHE_ENV = "UDASEG_CACHE"
DEFAULT_CACHE = "~/.cache/udaseg"
DEFAULT_TIMEOUT = 60.0  # seconds, per blocking socket operation (connect, each read), not the whole transfer


@dataclass(frozen=True)
class PretrainedWeights:
    """One entry of ``PRETRAINED_WEIGHTS``.

    url:        where to download the file from.
    filename:   its name in the cache directory.
    sha256:     full hex SHA-256, a hex prefix of it, or ``None`` (unknown: not verified).
    layout:     ``"caffe"`` or ``"torchvision"`` (see ``load_pretrained``), or ``"mit"`` (original
                NVlabs MiT layout, see ``mit.load_mit_pretrained``).
    archs:      the ``build_segmentor`` archs the file fits.
    input_norm: the ``model.input_norm`` the weights were trained with.
    source:     where url and checksum come from.
    packaged:   for weights shipped with udaseg: the file's path inside the package (``url`` unused).
    rebuild:    for packaged weights: the commands that make the file again.
    """

    url: str
    filename: str
    sha256: str | None
    layout: str
    archs: tuple[str, ...]
    input_norm: str
    source: str = ""
    packaged: str | None = None
    rebuild: str = ""


def _shipped_resnet18(name: str, sha256: str, out: str, keys: str = "") -> PretrainedWeights:
    """A ResNet-18 made by ``udaseg pretrain --out OUT [KEYS]`` and shipped as
    ``udaseg/models/pretrained/<name>.pth`` (the run's resnet18_fp16.pth), for deeplabv2_resnet18_tv."""
    made_by = " ".join(filter(None, ("udaseg pretrain", keys)))
    return PretrainedWeights(
        url="", filename=f"{name}.pth", sha256=sha256, layout="torchvision", archs=("deeplabv2_resnet18_tv",),
        input_norm="imagenet",
        source=f"made by {made_by} (the recipe in udaseg/apps/pretrain.py), shipped with the package",
        packaged=f"models/pretrained/{name}.pth",
        rebuild=" ".join(filter(None, (f"udaseg pretrain --out {out}", keys)))
                + f" && cp {out}/resnet18_fp16.pth <udaseg package>/models/pretrained/{name}.pth",
    )


PRETRAINED_WEIGHTS: dict[str, PretrainedWeights] = {
    # ADVENT's ImageNet-initialised DeepLab-V2 ResNet-101 (Caffe-converted; keys 'Scale.*', plus the
    # old VOC classifier 'Scale.layer5.*', which load_pretrained skips). URL: the v0.1 release of
    # valeoai/ADVENT (its README: "Pre-trained models can be downloaded [here]
    # (https://github.com/valeoai/ADVENT/releases)"; advent/scripts/configs/advent.yml:
    # RESTORE_FROM: ../../pretrained_models/DeepLab_resnet_pretrained_imagenet.pth).
    # Checksum: UNKNOWN — ADVENT publishes no digest for this file and the name carries none, so
    # it is not verified; pin the digest of your copy with model.pretrained_sha256.
    "deeplab_imagenet": PretrainedWeights(
        url="https://github.com/valeoai/ADVENT/releases/download/v0.1/DeepLab_resnet_pretrained_imagenet.pth",
        filename="DeepLab_resnet_pretrained_imagenet.pth",
        sha256=None,
        layout="caffe",
        archs=("deeplabv2_resnet101",),
        input_norm="caffe",
        source="valeoai/ADVENT v0.1 release (README, advent/scripts/configs/*.yml); no published checksum",
    ),
    # torchvision's original ImageNet ResNet-101 (the one FADA loads through the old
    # torchvision.models.resnet.model_urls['resnet101'], torchvision/models/resnet.py before 0.13).
    # Checksum: only the 8-hex SHA-256 prefix in the file name is known (torchvision convention,
    # checked by torch.hub.download_url_to_file via HASH_REGEX r"-([a-f0-9]*)\.").
    # (torchvision >= 0.13 serves IMAGENET1K_V1 as resnet101-63fe2227.pth instead — not this file.)
    "torchvision_resnet101": PretrainedWeights(
        url="https://download.pytorch.org/models/resnet101-5d3b4d8f.pth",
        filename="resnet101-5d3b4d8f.pth",
        sha256="5d3b4d8f",
        layout="torchvision",
        archs=("deeplabv2_resnet101_tv",),
        input_norm="imagenet",
        source="pytorch/vision torchvision/models/resnet.py model_urls; SHA-256 prefix from the file name",
    ),
    # The embedded benchmark's "ImageNet" ResNet-18: `udaseg pretrain` on the pretraining set
    # (udaseg/pretraining), float16 copy of its resnet18_fp16.pth (BENCHMARKS.md "Pretraining").
    "demo_resnet18": _shipped_resnet18("demo_resnet18", DEMO_RESNET18_SHA256, "runs/pretrain/demo_resnet18"),
    # The same pretraining with the street categories painted by the benchmark world's own object
    # models (pretraining key street_objects=world, udaseg/pretraining/world.py): benchmark v3's
    # init (configs/demo), chosen on the oracle under the paper's recipe (BENCHMARKS.md v3).
    "demo_resnet18_world": _shipped_resnet18("demo_resnet18_world", DEMO_RESNET18_WORLD_SHA256,
                                             "runs/pretrain/r18_world_3k", "street_objects=world"),
    # ImageNet-1k MiT-B0..B5 encoders (mit_b0.pth ... mit_b5.pth) in the original NVlabs key layout
    # (/work/shared/TRANSFORMERS.md §5a/§5b), loaded strictly by load_mit_pretrained (head.* dropped).
    # NVlabs itself shares them only via OneDrive / Google Drive folders (NVlabs/SegFormer README,
    # lhoyer/DAFormer README and tools/download_checkpoints.sh), not a plain URL; the direct .pth URLs
    # are smp's GitHub release v0.0.2, used by segmentation_models_pytorch 0.3.1-0.4.0
    # (encoders/mix_transformer.py pretrained_settings "imagenet" url; smp >= 0.5 serves safetensors
    # from HF smp-hub/mit_bX.imagenet instead). Same key names as the original files (smp's
    # MixVisionTransformerEncoder pops head.* and loads strictly). Checksum: UNKNOWN (neither smp
    # nor NVlabs publishes one): the download warns and prints the digest to pin with
    # model.pretrained_sha256. License: NVIDIA Source Code License, non-commercial (NVlabs/SegFormer LICENSE).
    **{f"mit_b{i}": PretrainedWeights(
        url=f"https://github.com/qubvel/segmentation_models.pytorch/releases/download/v0.0.2/mit_b{i}.pth",
        filename=f"mit_b{i}.pth",
        sha256=None,
        layout="mit",
        archs=(f"daformer_mitb{i}", f"segformer_mitb{i}"),
        input_norm="imagenet",
        source="segmentation_models.pytorch GitHub release v0.0.2 (the mit_bX 'imagenet' url of smp 0.3.1-0.4.0, "
               "encoders/mix_transformer.py); original NVlabs layout, as the OneDrive mit_bX.pth of "
               "NVlabs/SegFormer; no published checksum",
    ) for i in range(6)},
}


class WeightsDownloadError(OSError):
    """A named init-weights file could not be downloaded (offline, HTTP error, interrupted)."""


class WeightsChecksumError(ValueError):
    """A downloaded init-weights file does not match its expected SHA-256 (or prefix)."""


def available_pretrained() -> list[str]:
    """Names accepted by ``resolve_pretrained`` / ``model.pretrained``."""
    return list(PRETRAINED_WEIGHTS)


def cache_dir() -> Path:
    """``$UDASEG_CACHE`` or ``~/.cache/udaseg``, created if missing."""
    path = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _checksum_matches(digest: str, expected: str) -> bool:
    """Full digest or hex prefix (torchvision file names carry the first 8 hex digits)."""
    return digest.lower().startswith(expected.lower()) if len(expected) < 64 else digest.lower() == expected.lower()


def _spec(name: str) -> PretrainedWeights:
    if name not in PRETRAINED_WEIGHTS:
        raise ValueError(f"unknown pretrained weights {name!r}; known names: {', '.join(PRETRAINED_WEIGHTS)}")
    return PRETRAINED_WEIGHTS[name]


def check_pretrained_fits(name: str, arch: str | None = None, input_norm: str | None = None) -> PretrainedWeights:
    """The table entry of ``name``; ValueError if it does not fit ``arch`` / ``input_norm``."""
    spec = _spec(name)
    if arch is not None and arch not in spec.archs:
        fits = [n for n, s in PRETRAINED_WEIGHTS.items() if arch in s.archs]
        raise ValueError(
            f"pretrained weights {name!r} ({spec.layout} layout, {spec.filename}) fit arch "
            f"{' / '.join(spec.archs)}, not {arch!r}; "
            + (f"for {arch!r} use {' or '.join(map(repr, fits))}" if fits else
               f"no named weights fit {arch!r}: set model.pretrained to a local path")
        )
    if input_norm is not None and input_norm != spec.input_norm:
        raise ValueError(f"pretrained weights {name!r} expect model.input_norm={spec.input_norm!r}, "
                         f"got {input_norm!r}")
    return spec


def _manual_hint(url: str, target: Path) -> str:
    return (f"download {url} by hand and put it at {target} "
            f"(or set model.pretrained to the path of a local copy)")


def download_weights(name: str, *, url: str | None = None, sha256: str | None = None,
                     directory: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT,
                     progress: bool | None = None) -> Path:
    """The cached file of the named weights, downloading it first if missing or not verifying.

    Args:
        name: a key of ``PRETRAINED_WEIGHTS``.
        url: download from here instead of the table's URL (mirrors, tests).
        sha256: expected full digest or hex prefix instead of the table's.
        directory: cache directory instead of ``cache_dir()``.
        timeout: seconds per blocking socket operation.
        progress: tqdm bar on stderr; ``None`` = only when stderr is a terminal.

    Raises:
        ValueError: unknown name.
        WeightsDownloadError: unreachable server, HTTP error, interrupted/short transfer.
        WeightsChecksumError: the downloaded file does not match (nothing is left in the cache).
    """
    spec = _spec(name)
    url = url or spec.url
    expected = sha256 or spec.sha256
    folder = Path(directory).expanduser() if directory is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename

    if target.is_file():
        if expected is None:
            return target  # nothing to verify it against (it got here only via a complete download or by hand)
        have = sha256sum(target)
        if _checksum_matches(have, expected):
            return target
        warnings.warn(f"{target}: cached file has SHA-256 {have}, expected {expected}; downloading it again",
                      stacklevel=2)

    print(f"udaseg: downloading {name} weights from {url} to {target}", file=sys.stderr, flush=True)
    fd, part = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, target, timeout, progress)
        if expected is not None and not _checksum_matches(digest, expected):
            raise WeightsChecksumError(
                f"SHA-256 mismatch for {url}: expected {expected}{' (prefix)' if len(expected) < 64 else ''}, "
                f"got {digest}; the download was discarded, {target} was not written"
            )
        os.chmod(part, 0o644)  # mkstemp makes it 0600; a cached weight file is not secret
        os.replace(part, target)
    finally:
        if os.path.exists(part):
            os.unlink(part)
    if expected is None:
        warnings.warn(f"{target}: no known SHA-256 for {name!r} ({url}); the file was not verified. "
                      f"Its SHA-256 is {digest}: pin it with model.pretrained_sha256", stacklevel=2)
    return target


def _stream(url: str, out, target: Path, timeout: float, progress: bool | None) -> str:
    """Copy ``url`` into the open file ``out``; return the hex SHA-256 of what was written."""
    from tqdm import tqdm  # a dependency; imported here to keep ``import udaseg.models`` light

    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "udaseg"}),
                                          timeout=timeout)
    except urllib.error.HTTPError as e:
        raise WeightsDownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}; "
                                   + _manual_hint(url, target)) from e
    except (urllib.error.URLError, OSError) as e:  # offline, refused, DNS, timeout
        reason = getattr(e, "reason", e)
        raise WeightsDownloadError(f"cannot reach {url} ({reason}); no network? "
                                   + _manual_hint(url, target)) from e
    h = hashlib.sha256()
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        try:
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                      file=sys.stderr, disable=None if progress is None else not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except Exception as e:  # reset, timeout mid-transfer, http.client.IncompleteRead, …
            raise WeightsDownloadError(f"download of {url} was interrupted after {received} bytes ({e!r}); "
                                       + _manual_hint(url, target)) from e
    # http.client returns b"" (no error) when the server closes before Content-Length bytes came
    if total is not None and received != total:
        raise WeightsDownloadError(f"download of {url} is incomplete: got {received} of {total} bytes; "
                                   + _manual_hint(url, target))
    return h.hexdigest()


def resolve_pretrained(value: str | os.PathLike, arch: str | None = None, *, input_norm: str | None = None,
                       sha256: str | None = None, url: str | None = None,
                       directory: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT,
                       progress: bool | None = None) -> Path:
    """``model.pretrained`` → a local file: an existing path as it is, a name via the cache.

    For a name, ``arch`` / ``input_norm`` (when given) must fit its table entry, and ``sha256``
    (when given) replaces the table's checksum; see ``download_weights`` for the rest.

    Raises:
        FileNotFoundError: neither an existing path nor a known name (the message lists the names).
        ValueError: the name does not fit ``arch`` or ``input_norm``.
        WeightsDownloadError, WeightsChecksumError: see ``download_weights``.
    """
    path = Path(value).expanduser()
    if path.exists():
        return path
    name = os.fspath(value)
    if name not in PRETRAINED_WEIGHTS:
        raise FileNotFoundError(f"pretrained weights not found: {name!r} is neither an existing path "
                                f"(no such file) nor a known name ({', '.join(PRETRAINED_WEIGHTS)})")
    spec = check_pretrained_fits(name, arch, input_norm)
    if spec.packaged is not None:
        return packaged_weights(name, sha256=sha256)
    return download_weights(name, url=url, sha256=sha256, directory=directory, timeout=timeout, progress=progress)


def packaged_weights(name: str, *, sha256: str | None = None) -> Path:
    """The file of weights shipped inside the package, verified; missing or altered: how to rebuild it."""
    spec = _spec(name)
    path = Path(__file__).resolve().parents[1] / spec.packaged
    if not path.is_file():
        raise FileNotFoundError(f"the packaged weights {name!r} are missing from this installation ({path}); "
                                f"rebuild them with: {spec.rebuild}")
    expected = sha256 or spec.sha256
    have = sha256sum(path)
    if expected is not None and not _checksum_matches(have, expected):
        raise WeightsChecksumError(f"{path}: SHA-256 {have} is not the one shipped for {name!r} ({expected}); "
                                   f"reinstall udaseg or rebuild the file with: {spec.rebuild}")
    return path


def is_pretrained_name(value: str | os.PathLike | None) -> bool:
    """True when ``value`` would be resolved as a name (a known name that is not an existing path)."""
    return value is not None and not Path(value).expanduser().exists() and os.fspath(value) in PRETRAINED_WEIGHTS


__all__ = [
    "CACHE_ENV",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "WeightsChecksumError",
    "WeightsDownloadError",
    "available_pretrained",
    "cache_dir",
    "check_pretrained_fits",
    "download_weights",
    "is_pretrained_name",
    "packaged_weights",
    "resolve_pretrained",
]
