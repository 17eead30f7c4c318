"""In-memory weight transfer over a torch.distributed process group: the `collective` backend.

The learner's rank 0 and one actor's engine workers form a process group of their own (world
= 1 + the actor's tensor-parallel workers; the learner is rank 0). They meet through a
`TCPStore` that the learner hosts on `transport.sync_port`, under a key the actor picks
(`<actor_id>/<session>/<n>`, new for every transfer). gloo on CPU, NCCL where the learner trains
on CUDA. Nothing here depends on the learner's own process group: these groups are built
directly (`ProcessGroupGloo(store, rank, size)`), so a learner of several ranks and a vLLM
engine with its own groups can each take part.

One transfer, learner (root) -> actor, as broadcasts:

    int64[1]         the manifest's length in bytes
    uint8[n]         the manifest (msgpack): version, digest, buckets' sizes, and for every
                     tensor its name, dtype, shape, bucket and offset
    uint8[size_i]    each bucket: tensors' raw bytes, each at a 64-byte-aligned offset, at
                     most `bucket_bytes` per bucket (a larger tensor alone in its bucket)

    barrier          both sides, then the group is dropped: one group per transfer

The receiver streams: `Transfer.items()` yields each bucket's tensors as views, to be loaded
before the next bucket arrives, so the actor holds about one bucket beyond its engine's
weights. The digest is sha256 over the manifest's tensor list and every bucket's bytes, in
order; the receiver hashes the bytes as they arrive and `Transfer.check()` raises
`WeightsError` when they differ: the engine then holds wrong weights, and the caller reports
the load as failed (the learner falls back to a file for that version, which overwrites them).

Tied embeddings: the manifest always lists `lm_head.weight`, pointing at the embedding's
bytes when the state has none of its own, because vLLM's in-place reload otherwise keeps its
old output layer (lppo/core/weightfiles.py).

torch is imported inside the functions: `lppo/` must import without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from lppo.core.weightfiles import EMBED_KEY, LM_HEAD_KEY, WeightsError

if TYPE_CHECKING:
    import torch

SCHEME = "collective"
ALIGN = 64
WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})
DTYPE_NAMES = ("float32", "bfloat16", "float16")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


class Entry(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    name: str
    dtype: str
    shape: tuple[int, ...]
    bucket: int
    offset: int


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    digest: str
    buckets: tuple[int, ...]
    tensors: tuple[Entry, ...]


@dataclass
class Packed:
    """One policy version ready to broadcast: the manifest and its buckets (uint8, CPU)."""

    manifest: Manifest
    buckets: list[Any]

    @property
    def nbytes(self) -> int:
        return sum(self.manifest.buckets)


def uri(host: str, port: int, backend: str) -> str:
    return f"{SCHEME}://{host}:{port}/{backend}"


def address(notice_uri: str) -> tuple[str, int, str]:
    """(host, port, backend) of a `collective://host:port/backend` URI; anything else is a
    `WeightsError`."""
    parts = urlsplit(notice_uri)
    backend = parts.path.strip("/")
    if (parts.scheme != SCHEME or not parts.hostname or parts.port is None
            or backend not in ("gloo", "nccl")):
        raise WeightsError(f"weights uri {notice_uri!r}: expected {SCHEME}://host:port/gloo "
                           "or .../nccl")
    return parts.hostname, parts.port, backend


def is_collective(notice_uri: str) -> bool:
    return notice_uri.startswith(f"{SCHEME}://")


def _dtype(name: str):
    import torch

    if name not in DTYPE_NAMES:
        raise WeightsError(f"weights manifest: dtype {name!r} is not one of {DTYPE_NAMES}")
    return getattr(torch, name)


def _digest_start(version: int, buckets, tensors) -> Any:
    return hashlib.sha256(msgspec.msgpack.encode([version, list(buckets), list(tensors)]))


def pack(state: dict[str, torch.Tensor], version: int, bucket_bytes: int) -> Packed:
    """Copy `state` into buckets and describe them. Consumes `state`: each tensor is removed
    from the dict once copied, so the caller's copy of the model is freed as buckets fill."""
    import torch

    names = list(state)
    plan: list[tuple[str, str, tuple[int, ...], int, int, int]] = []
    sizes: list[int] = []
    used = 0
    for name in names:
        t = state[name]
        n = t.numel() * t.element_size()
        if used and used + n > bucket_bytes:
            sizes.append(used)
            used = 0
        plan.append((name, str(t.dtype).removeprefix("torch."), tuple(t.shape), len(sizes),
                     used, n))
        used += -(-n // ALIGN) * ALIGN
    sizes.append(used)
    buckets: list = []
    entries = []
    for name, dtype, shape, bucket, offset, n in plan:
        if bucket == len(buckets):  # one at a time: the state shrinks as the buckets grow
            buckets.append(torch.zeros(sizes[bucket], dtype=torch.uint8))
        t = state.pop(name).detach().to("cpu").contiguous()
        buckets[bucket][offset:offset + n].copy_(t.reshape(-1).view(torch.uint8))
        entries.append(Entry(name, dtype, shape, bucket, offset))
        del t
    if not any(e.name == LM_HEAD_KEY for e in entries):
        embed = next((e for e in entries if e.name == EMBED_KEY), None)
        if embed is not None:  # tied: the output layer is the embedding's bytes
            entries.append(Entry(LM_HEAD_KEY, embed.dtype, embed.shape, embed.bucket,
                                 embed.offset))
    digest = _digest_start(version, sizes, entries)
    for b in buckets:
        digest.update(b.numpy())
    manifest = Manifest(version=version, digest=digest.hexdigest(), buckets=tuple(sizes),
                        tensors=tuple(entries))
    return Packed(manifest, buckets)


def unpack(packed: Packed) -> dict[str, torch.Tensor]:
    """The packed tensors as a state dict of views into the buckets (no copy)."""
    return dict(_views(packed.manifest.tensors, packed.buckets))


def _views(entries, buckets) -> Iterator[tuple[str, Any]]:
    """(name, view) per entry; `buckets` is the list of buckets, or the one bucket they are in."""
    import torch

    for e in entries:
        dtype = _dtype(e.dtype)
        n = torch.Size(e.shape).numel() * dtype.itemsize
        buf = buckets[e.bucket] if isinstance(buckets, list) else buckets
        yield e.name, buf[e.offset:e.offset + n].view(dtype).view(e.shape)


def check_manifest(raw: bytes) -> Manifest:
    """Decode and check a received manifest; a bad one is a `WeightsError` naming the fault."""
    import torch

    try:
        m = msgspec.msgpack.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise WeightsError(f"weights manifest: {exc}") from None
    for e in m.tensors:
        if not 0 <= e.bucket < len(m.buckets):
            raise WeightsError(f"weights manifest: {e.name} names bucket {e.bucket} of "
                               f"{len(m.buckets)}")
        n = torch.Size(e.shape).numel() * _dtype(e.dtype).itemsize
        if e.offset < 0 or e.offset % ALIGN or e.offset + n > m.buckets[e.bucket]:
            raise WeightsError(f"weights manifest: {e.name} ({n} bytes at {e.offset}) does not "
                               f"fit bucket {e.bucket} of {m.buckets[e.bucket]} bytes")
    return m


# -- groups ----------------------------------------------------------------------------------


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def open_group(store, key: str, rank: int, world_size: int, timeout_s: float, backend: str,
               host: str):
    """A process group of `world_size` over `store`, under `key`; blocks until every member
    has joined (or `timeout_s` passes). `host`: the address gloo binds on this side (a
    wildcard: its default interface)."""
    import torch.distributed as dist

    prefix = dist.PrefixStore(f"lppo-sync/{key}", store)
    timeout = timedelta(seconds=timeout_s)
    if backend == "nccl":
        opts = dist.ProcessGroupNCCL.Options()
        opts._timeout = timeout
        return dist.ProcessGroupNCCL(prefix, rank, world_size, opts)
    gloo = dist.ProcessGroupGloo
    opts = gloo._Options()
    opts._timeout = timeout
    opts._devices = [gloo.create_default_device() if host in WILDCARDS
                     else gloo.create_device(hostname=host)]
    return gloo(prefix, rank, world_size, opts)


def bind_host(learner_host: str) -> str:
    """The address gloo binds on an actor: loopback when the learner is on this machine's
    loopback, else the default interface (a wildcard)."""
    import ipaddress

    try:
        loop = learner_host == "localhost" or ipaddress.ip_address(learner_host).is_loopback
    except ValueError:
        loop = False
    return learner_host if loop else "*"


def receive(host: str, port: int, key: str, rank: int, world_size: int, timeout_s: float,
            backend: str, device: str, load) -> tuple[int, str, int]:
    """The actor's side of one pull: join group `key`, receive a transfer and hand its tensors,
    as an iterator, to `load`; meet the learner at a barrier, drop the group. Returns (version,
    digest, tensors); a digest that differs raises `WeightsError` after the barrier."""
    store = client_store(host, port, timeout_s)
    group = open_group(store, key, rank, world_size, timeout_s, backend, bind_host(host))
    transfer = Transfer(group, device)
    try:
        items = transfer.items()
        load(items)
        for _ in items:  # a loader that stopped early: the rest must still be received
            pass
        group.barrier().wait()
    finally:  # no connection outlives its transfer, even while an exception's traceback
        transfer.group = None  # keeps this frame (and `transfer`) alive
        del group, store
    transfer.check()
    return transfer.manifest.version, transfer.manifest.digest, transfer.count


def client_store(host: str, port: int, timeout_s: float):
    import torch.distributed as dist

    return dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout_s))


def server_store(host: str, port: int, timeout_s: float):
    """The learner's rendezvous store, listening on `host` only. torch's TCPStore alone would
    listen on every interface, so it gets a socket bound here (`master_listen_fd`). The store
    takes that socket over and closes it when it is dropped; Python's socket object is
    detached so that it can never close the descriptor a second time (which, once the number
    is reused, closes someone else's: gloo's event loop then spins on a dead epoll fd)."""
    import socket

    import torch.distributed as dist

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("0.0.0.0" if host in WILDCARDS else host, port))
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    fd = listener.detach()
    return dist.TCPStore(host, port, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=timeout_s), master_listen_fd=fd)


def reachable(uri_host: str, learner_host: str) -> str:
    """Where an actor reaches the store: the notice's host, or, when the learner announced a
    wildcard it binds, the host the actor reaches the learner's sockets at."""
    return learner_host if uri_host in WILDCARDS else uri_host


def _broadcast(group, tensor) -> None:
    import torch.distributed as dist

    opts = dist.BroadcastOptions()
    opts.rootRank, opts.rootTensor = 0, 0
    group.broadcast([tensor], opts).wait()


def send(group, packed: Packed, device: str = "cpu") -> None:
    """Broadcast one packed version from rank 0 of `group`."""
    import torch

    header = msgspec.msgpack.encode(packed.manifest)
    _broadcast(group, torch.tensor([len(header)], dtype=torch.int64, device=device))
    _broadcast(group, torch.frombuffer(bytearray(header), dtype=torch.uint8).to(device))
    for bucket in packed.buckets:
        _broadcast(group, bucket.to(device))


class Transfer:
    """The receiving side of `send` (any rank but 0): the manifest on construction, the
    tensors from `items()`, checked against the digest once the last bucket has arrived."""

    def __init__(self, group, device: str = "cpu"):
        import torch

        self.group, self.device = group, device
        size = torch.zeros(1, dtype=torch.int64, device=device)
        _broadcast(group, size)
        n = int(size.item())
        if not 0 < n <= MAX_MANIFEST_BYTES:
            raise WeightsError(f"weights manifest: announced length {n} is out of range")
        raw = torch.empty(n, dtype=torch.uint8, device=device)
        _broadcast(group, raw)
        self.manifest = check_manifest(raw.cpu().numpy().tobytes())
        self.count = 0
        self.received_digest: str | None = None

    def items(self) -> Iterator[tuple[str, Any]]:
        import torch

        m = self.manifest
        digest = _digest_start(m.version, m.buckets, m.tensors)
        for index, size in enumerate(m.buckets):
            buf = torch.empty(size, dtype=torch.uint8, device=self.device)
            _broadcast(self.group, buf)
            digest.update(buf.cpu().numpy())
            entries = [e for e in m.tensors if e.bucket == index]
            for item in _views(entries, buf):
                self.count += 1
                yield item
        self.received_digest = digest.hexdigest()

    def check(self) -> None:
        """Raise `WeightsError` unless every bucket arrived and hashes to the manifest's digest
        (the engine then holds wrong weights: the caller reports the load as failed)."""
        m = self.manifest
        if self.received_digest != m.digest:
            got = (self.received_digest or "nothing")[:12]
            raise WeightsError(f"weights v{m.version}: received bytes hash to {got}..., the "
                               f"learner announced {m.digest[:12]}...")
