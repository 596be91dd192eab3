"""A Pulumi language host for Python programs, speaking the engine's LanguageRuntime gRPC protocol.

Why this exists: upstream's host is the Go module
``github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3``, which has no release tags and whose
pseudo-versions the module mirror reachable from this project's machines does not serve (checked for
every release from v3.200.0 to v3.260.0). The CLI and the Kubernetes provider do build from their
modules. This host does the one job ``pulumi up``/``preview`` need from it: start the program with the
engine's settings through the SDK's own ``pulumi-language-python-exec`` script (copied from the pinned
``sdk/v3`` module), and report the resource plugins the installed packages declare.

The engine starts it as ``pulumi-language-python [-option=value ...] ENGINE_ADDRESS`` and reads the port it
listens on from its first line of output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from importlib import metadata
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

HOST_VERSION = "3.259.0"  # the SDK version this host starts programs with; see toolchain/versions.env
# toolchain/bootstrap.sh installs the SDK's exec script next to the virtualenv's python.
EXEC_SCRIPT = Path(os.environ.get("MESHKIT_PULUMI_EXEC", Path(sys.executable).with_name("pulumi-language-python-exec")))
# Exit code the exec script uses after it has shown the user an error message itself.
EXIT_AFTER_USER_MESSAGE = 32
# The engine's config reaches the program in a file that the program's first lines read into its own
# environment, where the SDK looks for it (PULUMI_CONFIG). Not in the environment the program is started
# with: Linux limits one environment string to 128 KiB (MAX_ARG_STRLEN), which the config of a stack of
# some 400 services exceeds, and the start fails with E2BIG (upstream's host has that limit:
# pulumi/pulumi#8680). The file holds decrypted secrets: private to the user, removed once read.
CONFIG_BOOTSTRAP = """
import os, runpy, sys
config_file, script = sys.argv[1], sys.argv[2]
with open(config_file, encoding="utf-8") as config:
    os.environ["PULUMI_CONFIG"] = config.read()
os.unlink(config_file)
sys.argv = sys.argv[2:]
sys.path[0] = os.path.dirname(script)
runpy.run_path(script, run_name="__main__")
"""


def _options(argv: list[str]) -> tuple[dict[str, str], str]:
    """Go-style ``-name=value`` flags, and the engine address (the last positional argument)."""
    options, positional = {}, []
    for arg in argv:
        if arg.startswith("-"):
            name, _, value = arg.lstrip("-").partition("=")
            options[name] = value
        else:
            positional.append(arg)
    return options, positional[-1] if positional else ""


def _resource_plugins() -> list[plugin_pb2.PackageDependency]:
    """The ``pulumi-plugin.json`` of every installed package that needs a resource plugin."""
    found = []
    for dist in metadata.distributions():
        for file in dist.files or []:
            if file.name != "pulumi-plugin.json":
                continue
            info = json.loads(Path(str(dist.locate_file(file))).read_text())
            if info.get("resource"):
                found.append(
                    plugin_pb2.PackageDependency(
                        name=info["name"],
                        kind="resource",
                        version=f"v{info['version'].lstrip('v')}",
                        server=info.get("server", ""),
                    )
                )
    return sorted(found, key=lambda p: p.name)


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, options: dict[str, str], engine_address: str) -> None:
        self.programs: set[subprocess.Popen[bytes]] = set()
        self.options = options
        self.engine_address = engine_address
        self.root = Path(options.get("root", ".")).resolve()

    def _python(self, root: Path) -> str:
        venv = self.options.get("virtualenv")
        if venv:
            candidate = (root / venv / "bin" / "python").resolve()
            if candidate.exists():
                return str(candidate)
        return sys.executable

    def Handshake(self, request, context):  # noqa: N802 (gRPC method names)
        self.engine_address = request.engine_address or self.engine_address
        if request.root_directory:
            self.root = Path(request.root_directory)
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):  # noqa: N802
        return plugin_pb2.PluginInfo(version=HOST_VERSION)

    def GetRequiredPlugins(self, request, context):  # noqa: N802
        plugins = [
            plugin_pb2.PluginDependency(name=p.name, kind=p.kind, version=p.version, server=p.server)
            for p in _resource_plugins()
        ]
        return language_pb2.GetRequiredPluginsResponse(plugins=plugins)

    def GetRequiredPackages(self, request, context):  # noqa: N802
        return language_pb2.GetRequiredPackagesResponse(packages=_resource_plugins())

    def GetProgramDependencies(self, request, context):  # noqa: N802
        deps = [
            language_pb2.DependencyInfo(name=d.metadata["Name"], version=d.version)
            for d in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"].lower())
        ]
        return language_pb2.GetProgramDependenciesResponse(dependencies=deps)

    def InstallDependencies(self, request, context):  # noqa: N802
        # Dependencies are installed by toolchain/bootstrap.sh (pinned); nothing to do here.
        yield language_pb2.InstallDependenciesResponse(stdout=b"dependencies are managed by toolchain/bootstrap.sh\n")

    def About(self, request, context):  # noqa: N802
        return language_pb2.AboutResponse(executable=self._python(self.root), version=sys.version.split()[0])

    def Cancel(self, request, context):  # noqa: N802
        return empty_pb2.Empty()

    def Run(self, request, context):  # noqa: N802
        root = Path(request.info.root_directory or self.root)
        program = request.info.entry_point or request.program or "."
        program_dir = request.info.program_directory or request.pwd or str(root)
        env = {
            **{key: value for key, value in os.environ.items() if key != "PULUMI_CONFIG"},
            "PULUMI_CONFIG_SECRET_KEYS": json.dumps(list(request.configSecretKeys)),
            "PYTHONUNBUFFERED": "1",
        }
        descriptor, config_file = tempfile.mkstemp(prefix="pulumi-config-", suffix=".json")  # mode 0600
        with os.fdopen(descriptor, "w", encoding="utf-8") as config:
            json.dump(dict(request.config), config)
        command = [
            self._python(root), "-u", "-c", CONFIG_BOOTSTRAP, config_file, str(EXEC_SCRIPT),
            "--monitor", request.monitor_address,
            "--engine", self.engine_address,
            "--project", request.project,
            "--stack", request.stack,
            "--pwd", program_dir,
            "--dry_run", "true" if request.dryRun else "false",
            "--parallel", str(request.parallel),
            "--organization", request.organization,
            "--root_directory", str(root),
            program, *request.args,
        ]  # fmt: skip
        try:
            program_process = subprocess.Popen(command, env=env, cwd=program_dir)
            self.programs.add(program_process)
            try:
                code = program_process.wait()
            finally:
                self.programs.discard(program_process)
        finally:
            Path(config_file).unlink(missing_ok=True)  # a program that died before reading it
        if code == 0:
            return language_pb2.RunResponse()
        if code == EXIT_AFTER_USER_MESSAGE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {code}")


def main() -> None:
    options, engine_address = _options(sys.argv[1:])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)],
    )
    host = PythonLanguageHost(options, engine_address)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # The engine stops its plugins with SIGINT once it is done with them: a normal, quiet exit.
    signal.signal(signal.SIGINT, lambda *_: server.stop(grace=None))

    def engine_gone() -> None:
        for program in list(host.programs):
            program.kill()
        server.stop(grace=None)

    threading.Thread(target=watch_engine, args=(engine_address, engine_gone), daemon=True).start()
    server.wait_for_termination()


def watch_engine(address: str, on_gone: Callable[[], None], interval: float = 2, misses: int = 3) -> None:
    """Call ``on_gone`` once the engine stops answering at ``address``: a `pulumi up` killed with SIGKILL
    cannot stop its plugins, and a language host (with the program it runs, waiting on the dead engine)
    would otherwise live on. Plugins built with Pulumi's Go SDK check their engine too (rpcutil.Healthcheck),
    every five minutes."""
    host, _, port = address.rpartition(":")
    missed = 0
    while missed < misses:
        time.sleep(interval)
        try:
            with socket.create_connection((host, int(port)), timeout=interval):
                missed = 0
        except OSError:
            missed += 1
    on_gone()


if __name__ == "__main__":
    main()
