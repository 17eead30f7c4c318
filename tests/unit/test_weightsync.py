"""lppo/core/weightsync.py: packing, the manifest's checks, and a real broadcast between two
gloo ranks (threads of this process, each with its own process group object)."""

from __future__ import annotations

import os
import threading
import time

import msgspec
import pytest
import torch

from lppo.core import weightsync as ws
from lppo.core.weightfiles import WeightsError
from lppo.testing.postgres import free_ports


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"model.embed_tokens.weight": torch.randn(50, 8).bfloat16(),
            "odd": torch.randn(3).bfloat16(),  # 6 bytes: the next tensor must still align
            "model.norm.weight": torch.randn(1000, 7),
            "half": torch.randn(5, 3).half()}


def test_pack_consumes_the_state_and_unpacks_to_the_same_tensors_with_lm_head():
    state = _state()
    expected = {k: v.clone() for k, v in state.items()}
    packed = ws.pack(state, version=7, bucket_bytes=4096)
    assert state == {}  # consumed: the caller's copy is freed as the buckets fill
    assert len(packed.buckets) == 3 and packed.manifest.version == 7
    assert all(e.offset % ws.ALIGN == 0 for e in packed.manifest.tensors)
    got = ws.unpack(packed)
    assert set(got) == set(expected) | {"lm_head.weight"}
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor)
    assert torch.equal(got["lm_head.weight"], expected["model.embed_tokens.weight"])


def test_the_digest_covers_names_and_bytes():
    a = ws.pack(_state(), 1, 4096).manifest.digest
    assert ws.pack(_state(), 1, 4096).manifest.digest == a
    assert ws.pack(_state(), 2, 4096).manifest.digest != a  # the version is in it
    renamed = _state()
    renamed["other"] = renamed.pop("odd")
    assert ws.pack(renamed, 1, 4096).manifest.digest != a


def test_a_bad_manifest_is_a_weights_error_naming_the_fault():
    packed = ws.pack(_state(), 1, 4096)
    good = packed.manifest
    assert ws.check_manifest(msgspec.msgpack.encode(good)) == good
    with pytest.raises(WeightsError, match="weights manifest: "):
        ws.check_manifest(b"\x93garbage")
    entry = good.tensors[0]
    moved = msgspec.structs.replace(entry, offset=entry.offset + 1)
    bad = msgspec.structs.replace(good, tensors=(moved, *good.tensors[1:]))
    with pytest.raises(WeightsError, match="does not fit bucket"):
        ws.check_manifest(msgspec.msgpack.encode(bad))
    wrong = msgspec.structs.replace(good, tensors=(msgspec.structs.replace(entry, dtype="int8"),))
    with pytest.raises(WeightsError, match="dtype 'int8'"):
        ws.check_manifest(msgspec.msgpack.encode(wrong))


def test_uri_round_trip_and_bad_uris():
    uri = ws.uri("127.0.0.1", 5558, "gloo")
    assert ws.is_collective(uri) and ws.address(uri) == ("127.0.0.1", 5558, "gloo")
    for bad in ("file:///x/model.safetensors", "collective://127.0.0.1/gloo",
                "collective://127.0.0.1:5558/mpi"):
        with pytest.raises(WeightsError, match="expected collective://host:port/gloo"):
            ws.address(bad)


def _round_trip(packed: ws.Packed, tamper=None) -> tuple[dict, BaseException | None]:
    port = free_ports(1)[0]
    store = ws.server_store("127.0.0.1", port, 20)
    got: dict = {}
    failure: list[BaseException] = []

    def actor() -> None:
        try:
            got["result"] = ws.receive("127.0.0.1", port, "a/s/1", 1, 2, 20, "gloo", "cpu",
                                       lambda items: got.update({n: t.clone() for n, t in items}))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=actor)
    thread.start()
    group = ws.open_group(store, "a/s/1", 0, 2, 20, "gloo", "127.0.0.1")
    if tamper is not None:
        tamper(packed)
    ws.send(group, packed)
    group.barrier().wait()  # the learner's side returns only once the actor has it all
    del group
    thread.join(30)
    del store
    return got, failure[0] if failure else None


def test_a_broadcast_between_two_gloo_ranks_delivers_every_tensor():
    expected = {k: v.clone() for k, v in _state().items()}
    packed = ws.pack(_state(), 3, 4096)
    got, failure = _round_trip(packed)
    assert failure is None
    assert got["result"] == (3, packed.manifest.digest, len(packed.manifest.tensors))
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor)


def test_bytes_that_do_not_match_the_digest_fail_the_pull_after_the_barrier():
    packed = ws.pack(_state(), 3, 4096)

    def flip(p: ws.Packed) -> None:
        p.buckets[-1][0] ^= 0xFF

    got, failure = _round_trip(packed, tamper=flip)
    assert isinstance(failure, WeightsError)
    assert "received bytes hash to" in str(failure)


def test_bind_host_is_loopback_only_for_a_loopback_learner():
    assert ws.bind_host("127.0.0.1") == "127.0.0.1"
    assert ws.bind_host("localhost") == "localhost"
    assert ws.bind_host("10.0.0.5") == "*"
    assert ws.bind_host("learner-node") == "*"


@pytest.mark.gpu
def test_a_broadcast_between_two_gpus_over_nccl_delivers_every_tensor():
    """The learner on cuda:0, the receiving worker on cuda:1 (NCCL wants distinct devices)."""
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs, found {torch.cuda.device_count()}")
    expected = {k: v.clone() for k, v in _state().items()}
    packed = ws.pack(_state(), 3, 4096)
    port = free_ports(1)[0]
    store = ws.server_store("127.0.0.1", port, 60)
    got: dict = {}

    def actor() -> None:
        torch.cuda.set_device(1)
        got["result"] = ws.receive("127.0.0.1", port, "g/s/1", 1, 2, 60, "nccl", "cuda:1",
                                   lambda items: got.update({n: t.cpu() for n, t in items}))

    thread = threading.Thread(target=actor)
    thread.start()
    torch.cuda.set_device(0)
    group = ws.open_group(store, "g/s/1", 0, 2, 60, "nccl", "127.0.0.1")
    ws.send(group, packed, "cuda:0")
    group.barrier().wait()
    thread.join(60)
    assert got["result"][0] == 3
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor)


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as the kernel lists them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


def test_the_store_listens_on_its_host_only():
    """torch's TCPStore alone listens on every interface; ours on the configured host."""
    port = free_ports(1)[0]
    store = ws.server_store("127.0.0.1", port, 5)
    assert _listening(port) == ["0100007F"]  # 127.0.0.1, and nothing else
    del store  # the store owns the socket (nothing else may close it): dropping it closes it
    assert _listening(port) == []


def test_a_wildcard_in_the_notice_means_the_learners_own_address():
    assert ws.reachable("0.0.0.0", "learner-node") == "learner-node"
    assert ws.reachable("10.0.0.5", "learner-node") == "10.0.0.5"


def test_no_connection_outlives_a_transfer():
    """A group per transfer, dropped at the end: no gloo network thread is left behind."""
    def gloo_threads() -> list[str]:
        names = []
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/comm") as fh:
                    names.append(fh.read().strip())
            except OSError:
                continue
        return [n for n in names if n.startswith("gloo")]

    _round_trip(ws.pack(_state(), 1, 4096))
    deadline = time.monotonic() + 10
    while gloo_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gloo_threads() == []
