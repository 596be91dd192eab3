"""The real node's pure parts: its images' layout (toolchain/images.py), which stand-in answers for which
image (toolchain/standins.py), and the configuration it gives containerd, the CNI bridge and kubelet
(toolchain/node.py). The node itself runs in the data-plane tier (tests/dataplane/)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from toolchain import images, standins
from toolchain.node import RealNode

from .scenario_data import SCENARIOS


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_an_image_layout_names_each_image_and_stores_every_blob_under_its_digest(tmp_path: Path) -> None:
    layer = images.Layer()
    layer.add("standin", b"binary", 0o755)
    layer.link("bin/sleep", "/standin")
    shared = layer.tar()
    layout = images.write_layout(
        [images.Image("docker.io/library/a:1", (shared,), ("/standin",)),
         images.Image("docker.io/library/b:1", (shared,), ("/standin",), env=("X=1",))],
        tmp_path / "layout.tar",
    )  # fmt: skip
    files = _members(layout)
    index = json.loads(files["index.json"])
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["docker.io/library/a:1", "docker.io/library/b:1"]
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    # The one layer both images share is stored once.
    layers = [n for n, d in files.items() if d == shared]
    assert len(layers) == 1
    with tarfile.open(fileobj=io.BytesIO(shared)) as tar:
        entries = {m.name: m for m in tar.getmembers()}
    assert entries["bin/sleep"].issym() and entries["bin/sleep"].linkname == "/standin"
    assert entries["bin"].isdir() and entries["standin"].mode == 0o755


def test_an_image_layout_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    def build(target: Path) -> bytes:
        layer = images.Layer()
        layer.add("etc/passwd", b"root:x:0:0::/:/bin/false\n")
        layer.directory("tmp", 0o1777)
        return images.write_layout([images.Image("x:1", (layer.tar(),), ("/x",))], target).read_bytes()

    assert build(tmp_path / "one.tar") == build(tmp_path / "two.tar")


def test_every_image_the_scenarios_name_has_a_stand_in() -> None:
    named = {line.split("image:", 1)[1].strip() for path in SCENARIOS.glob("[AB]*.yaml")
             for line in path.read_text().splitlines() if line.strip().startswith("image:")}  # fmt: skip
    assert named <= set(standins.STANDINS), f"images without a stand-in: {sorted(named - set(standins.STANDINS))}"


def test_image_names_are_normalized_as_containerd_names_them() -> None:
    assert standins.normalized("nginx:1.14") == "docker.io/library/nginx:1.14"
    assert standins.normalized("curlimages/curl:8.11.1") == "docker.io/curlimages/curl:8.11.1"
    assert standins.normalized("docker.io/istio/x:1") == "docker.io/istio/x:1"
    assert standins.normalized("localhost:5000/x:1") == "localhost:5000/x:1"
    assert standins.normalized("meshkit.local/pause:1") == "meshkit.local/pause:1"


def test_bookinfo_stand_ins_call_as_bookinfo_does() -> None:
    productpage = standins.STANDINS[standins.BOOKINFO.format("productpage-v1")]
    assert "STANDIN_CALLS=details:9080:3s,reviews:9080:3s:1" in productpage.environment()
    assert standins.STANDINS[standins.BOOKINFO.format("reviews-v1")].calls == ""
    for version, stars in (("v2", "black"), ("v3", "red")):
        reviews = standins.STANDINS[standins.BOOKINFO.format(f"reviews-{version}")]
        assert reviews.calls.startswith("ratings:9080:") and reviews.stars == stars


def test_the_node_network_stays_on_its_bridge(tmp_path: Path) -> None:
    node = RealNode(tmp_path / "node", 201)
    bin_dir = tmp_path / "bin"
    node.write_config(
        bin_dir, images.PAUSE_IMAGE, "10.96.0.0/16", 10250, 10248, tmp_path / "ca.crt", tmp_path / "c", tmp_path / "k"
    )
    cni = json.loads((node.directory / "cni/net.d/10-meshkit.conflist").read_text())
    bridge = cni["plugins"][0]
    # No masquerade and no port mapping: nothing written to the host's firewall, nothing reaches beyond it.
    assert bridge["ipMasq"] is False and [p["type"] for p in cni["plugins"]] == ["bridge", "loopback"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.201.0/24"}]]
    # Service addresses through the node; no default route: nothing beyond this machine is reachable.
    assert bridge["ipam"]["routes"] == [{"dst": "10.96.0.0/16", "gw": "10.244.201.1"}]
    # Not the pods' gateway, so the plugin leaves the host's IP forwarding off.
    assert bridge["isGateway"] is False
    kubelet = json.loads((node.directory / "kubelet.json").read_text())
    assert kubelet["address"] == "10.244.201.1" and kubelet["readOnlyPort"] == 0
    assert kubelet["healthzBindAddress"] == "127.0.0.1"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["cgroupRoot"] == "/meshkit-201" and kubelet["makeIPTablesUtilChains"] is False
    containerd = (node.directory / "containerd.toml").read_text()
    assert "imports = []" in containerd and f'address = "{node.socket}"' in containerd
    assert "stream_server_address = '127.0.0.1'" in containerd
