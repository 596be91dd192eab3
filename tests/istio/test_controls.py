"""Broken controls: proof that the Istio tier can fail. Each starts from a real `meshkit render` of scenario A3
(nginx v1/v2 at 70/30 in namespace demo, which the tier itself finds clean), breaks one thing the way a hand
edit or a meshkit bug would, and asserts what istioctl reports, by IST code where istioctl has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ..scenario_data import SCENARIOS
from .istioctl import allowed_messages, analyze, failing, format_message, validate
from .rendering import render

VIRTUAL_SERVICE = "virtualservice.networking.istio.io_demo_nginx.yaml"
SERVICE = "service_demo_nginx.yaml"


@pytest.fixture
def a3(tmp_path: Path) -> Path:
    return render(SCENARIOS / "A3.yaml", tmp_path / "A3")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dump(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


def reported(directory: Path, code: str) -> list[dict[str, Any]]:
    """The failing messages of `istioctl analyze` over ``directory``; asserts that ``code`` is among them."""
    bad = failing(analyze(directory).messages, allowed_messages())
    assert code in [m["code"] for m in bad], f"istioctl analyze did not report {code}:\n" + "\n".join(
        map(format_message, bad)
    )
    return [m for m in bad if m["code"] == code]


def test_route_to_a_missing_subset_is_ist0101(a3: Path) -> None:
    vs = load(a3 / VIRTUAL_SERVICE)
    destination = vs["spec"]["http"][-1]["route"][1]["destination"]
    assert destination == {"host": "nginx", "subset": "v2"}
    destination["subset"] = "v3"  # the DestinationRule declares v1 and v2 only
    dump(a3 / VIRTUAL_SERVICE, vs)

    [message] = reported(a3, "IST0101")
    assert message["level"] == "Error"
    assert message["origin"] == "VirtualService demo/nginx"
    assert '"nginx+v3"' in message["message"]


def test_two_virtual_services_for_one_host_is_ist0109(a3: Path) -> None:
    vs = load(a3 / VIRTUAL_SERVICE)
    vs["metadata"]["name"] = "nginx-canary"
    dump(a3 / "virtualservice.networking.istio.io_demo_nginx-canary.yaml", vs)

    messages = reported(a3, "IST0109")
    assert {m["origin"] for m in messages} == {"VirtualService demo/nginx", "VirtualService demo/nginx-canary"}
    assert all("nginx.demo.svc.cluster.local" in m["message"] for m in messages)


@pytest.mark.parametrize(
    ("port_name", "complaint"),
    [
        ("web", 'port "web" does not follow the Istio naming convention'),
        (None, "has an unnamed port"),
    ],
)
def test_badly_named_or_unnamed_service_port_is_refused_by_validate(
    a3: Path, port_name: str | None, complaint: str
) -> None:
    """Offline, only `istioctl validate` sees this, and it has no IST code for it: `istioctl analyze` drops
    Service objects read from files (service.PortNameAnalyzer is skipped), and its message for this,
    IST0118 PortNameIsNotUnderNamingConvention, is Info level, below any failure threshold. With a cluster,
    analyze reports IST0118 (Info) for the same Service."""
    service = load(a3 / SERVICE)
    [port] = service["spec"]["ports"]
    assert port["name"] == "http"
    if port_name is None:
        del port["name"]
    else:
        port["name"] = port_name
    dump(a3 / SERVICE, service)

    result = validate(a3 / SERVICE)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"istioctl validate accepted it:\n{output}"
    assert "Service/demo/nginx" in output
    assert complaint in output, output
    # A tripwire: once istioctl analyzes Services from files, assert IST0118 here (and raise its level).
    assert "IST0118" not in analyze(a3).codes()
