"""The filesystem weight-transfer format shared by the learner (writer) and actors (readers).

Policy version N lives in `<run_dir>/weights/vN/model.safetensors`, one safetensors file with
the full state dict in checkpoint (transformers) names. The learner writes it into a temporary
folder, fsyncs, hashes it, and renames the folder into place, so an actor never sees a partial
file; the `WeightsReady{version, uri, sha256}` notice carries the digest, and the actor refuses
a file whose digest differs (corrupted on disk, or overwritten).

Tied embeddings: with `tie_word_embeddings`, the state dict has no separate `lm_head.weight`,
and vLLM's in-place reload then silently keeps the *old* output layer (shared notes: log-probs
off by up to 1.7 nats). The writer therefore always stores `lm_head.weight` explicitly (a
clone of the embedding when tied).

torch and safetensors are imported inside the functions: `lppo/` must import without them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from lppo.core.wire import WeightsReady

if TYPE_CHECKING:
    import torch

FILENAME = "model.safetensors"
EMBED_KEY = "model.embed_tokens.weight"
LM_HEAD_KEY = "lm_head.weight"


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable, or does not match its announced digest."""


def weights_dir(run_dir: Path, version: int) -> Path:
    return Path(run_dir) / "weights" / f"v{version}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def with_explicit_lm_head(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with `lm_head.weight` present (cloned from the embedding if tied),
    every tensor contiguous, on CPU and unshared (safetensors refuses shared storage)."""
    out = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}
    if LM_HEAD_KEY not in out and EMBED_KEY in out:
        out[LM_HEAD_KEY] = out[EMBED_KEY].clone()
    seen: set[int] = set()
    for name, t in out.items():
        if t.data_ptr() in seen:
            out[name] = t.clone()
        seen.add(out[name].data_ptr())
    return out


def write_weights(state: Mapping[str, torch.Tensor], run_dir: Path, version: int) -> WeightsReady:
    """Write policy `version` atomically and return the notice that announces it."""
    from safetensors.torch import save_file

    final = weights_dir(run_dir, version)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    path = tmp / FILENAME
    save_file(with_explicit_lm_head(state), str(path), metadata={"lppo_version": str(version)})
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    digest = sha256_file(path)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(final.parent)
    return WeightsReady(version=version, uri=(final / FILENAME).resolve().as_uri(), sha256=digest)


def local_path(uri: str) -> Path:
    """The path of a `file://` weights URI."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise WeightsError(f"weights uri {uri!r}: only file:// is supported by this backend")
    return Path(unquote(parts.path))


def verified_path(notice: WeightsReady) -> Path:
    """The local file of a notice, after checking that it exists and matches its sha256."""
    path = local_path(notice.uri)
    if not path.is_file():
        raise WeightsError(f"weights v{notice.version}: {path} does not exist")
    actual = sha256_file(path)
    if actual != notice.sha256:
        raise WeightsError(
            f"weights v{notice.version}: sha256 of {path} is {actual[:12]}..., "
            f"announced {notice.sha256[:12]}... (corrupted or replaced); refusing it"
        )
    return path


def load_state(path: Path) -> dict[str, Any]:
    """Read a weights file into CPU tensors."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def prune_weights(run_dir: Path, keep_from: int, keep_every: int = 0) -> None:
    """Remove published versions older than `keep_from` (actors may still read newer ones),
    except multiples of `keep_every` when it is > 0 (kept for later evaluation)."""
    root = Path(run_dir) / "weights"
    if not root.is_dir():
        return
    for child in root.iterdir():
        name = child.name
        if not (name.startswith("v") and name[1:].isdigit()):
            continue
        version = int(name[1:])
        if version < keep_from and not (keep_every > 0 and version % keep_every == 0):
            shutil.rmtree(child, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
