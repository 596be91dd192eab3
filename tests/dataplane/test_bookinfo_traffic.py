"""Scenario B, Istio's Bookinfo, through the ingress gateway from this machine, as the sources show it in a
browser: which version of reviews answered, jason's own route, a 7 s delay, an HTTP 500, half from v3.

The stack is deployed step by step (B1 → B5) with the real engine; each test moves it forward to the step
it is about. After a step, the test waits until the proxies serve it (an answer that only the new
configuration gives), then asserts over many requests that every answer is the step's.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..live.deploy import LiveStack, new_live_stack
from ..scenario_data import B_STEPS, REPO
from .mesh import Mesh, call, wait_for, within_split

pytestmark = pytest.mark.dataplane

NAMESPACE = "bookinfo"
ARTIFACTS = REPO / "test-artifacts" / "browser"
PAGE = "/productpage"
JSON = ("Accept", "application/json")
# jason's session as a browser sends it: other cookies first, `user=jason` among them.
JASON = ("Cookie", "a=b; user=jason")
# Cookies that must not match jason's rule (it matches the cookie user=jason exactly).
NOT_JASON = (("Cookie", "a=b; user=jasonx"), ("Cookie", "xuser=jason"), ("Cookie", "a=b"))


@dataclass
class Bookinfo:
    stack: LiveStack
    mesh: Mesh
    deployed: list[str] = field(default_factory=list)

    def at(self, step: str) -> None:
        """Deploy every step up to ``step`` that is not deployed yet (steps only move forward): the first
        with `make up`, every later one with `make step`, as a user rolls Bookinfo forward."""
        for next_step in B_STEPS[: B_STEPS.index(step) + 1]:
            if next_step not in self.deployed:
                self.stack.use_step(next_step)
                self.stack.make("step" if self.deployed else "up")
                self.deployed.append(next_step)

    def page(self, *headers: tuple[str, str]) -> dict[str, Any]:
        status, answer, seconds = self.mesh.gateway(PAGE, JSON, *headers)
        assert status == 200, f"GET {PAGE} through the gateway: {status} {answer}"
        return {**answer, "seconds": seconds}

    def reviews_version(self, *headers: tuple[str, str]) -> str | None:
        reviews = call(self.page(*headers), "reviews")
        return None if reviews is None or reviews.get("status") != 200 else reviews["version"]

    def versions(self, n: int, *headers: tuple[str, str]) -> Counter[str | None]:
        with ThreadPoolExecutor(8) as pool:
            return Counter(pool.map(lambda _: self.reviews_version(*headers), range(n)))


@pytest.fixture(scope="module")
def bookinfo(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bookinfo]:
    yield Bookinfo(new_live_stack(tmp_path_factory.mktemp("bookinfo"), mesh.cluster, "bookinfo"), mesh)


def test_b1_every_reviews_answer_comes_from_v1(bookinfo: Bookinfo) -> None:
    bookinfo.at("B1")
    wait_for("productpage through the gateway", lambda: bookinfo.reviews_version() == "v1")
    assert bookinfo.versions(200) == {"v1": 200}
    assert bookinfo.versions(50, JASON) == {"v1": 50}


def test_b2_jason_gets_reviews_v2_and_everyone_else_v1(bookinfo: Bookinfo) -> None:
    bookinfo.at("B2")
    wait_for("jason's route to reviews v2", lambda: bookinfo.reviews_version(JASON) == "v2")
    assert bookinfo.versions(100, JASON) == {"v2": 100}
    assert bookinfo.versions(100) == {"v1": 100}
    for cookie in NOT_JASON:
        assert bookinfo.versions(30, cookie) == {"v1": 30}, f"{cookie} was routed as jason"


def test_b2_in_a_browser_jason_sees_black_stars(bookinfo: Bookinfo, mesh: Mesh) -> None:
    """Headless Chromium opens the page through the gateway, once anonymous and once after jason's login
    (Bookinfo's /login, which sets the cookie); the DOM says which reviews version the page shows."""
    bookinfo.at("B2")
    wait_for("jason's route to reviews v2", lambda: bookinfo.reviews_version(JASON) == "v2")
    anonymous = browse(mesh.cluster.gateway_url + PAGE, ARTIFACTS / "b2-anonymous")
    jason = browse(mesh.cluster.gateway_url + "/login?user=jason", ARTIFACTS / "b2-jason")
    assert 'data-version="v1"' in anonymous and 'data-stars="none"' in anonymous, anonymous
    assert 'data-version="v2"' in jason and 'data-stars="black"' in jason, jason


def test_b2_on_the_wire_only_allowed_callers_with_a_sidecar_get_through(bookinfo: Bookinfo, mesh: Mesh) -> None:
    bookinfo.at("B2")
    reviews = mesh.pod_of(NAMESPACE, "reviews", "v1")
    productpage = mesh.pod_of(NAMESPACE, "productpage", "v1")
    # details admits productpage only: reviews, a meshed caller with its own identity, is refused by Envoy.
    refused = mesh.fetch(NAMESPACE, reviews, "http://details:9080/details/0")
    assert refused["status"] == 403 and "RBAC: access denied" in str(refused["body"]), refused
    allowed = mesh.fetch(NAMESPACE, productpage, "http://details:9080/details/0")
    assert allowed["status"] == 200, allowed
    # ratings admits reviews only: productpage is denied by default.
    denied = mesh.fetch(NAMESPACE, productpage, "http://ratings:9080/ratings/0")
    assert denied["status"] == 403, denied
    # A pod without a sidecar speaks plain text, which STRICT mTLS refuses at the connection.
    details_ip = mesh.pods(NAMESPACE, "app=details")[0]["status"]["podIP"]
    plain = plain_client(mesh)
    answer = mesh.fetch("plain", plain, f"http://{details_ip}:9080/details/0")
    assert answer["status"] in (0, None) and answer["error"], answer


def test_b3_jasons_ratings_call_is_delayed_7_seconds(bookinfo: Bookinfo, mesh: Mesh) -> None:
    bookinfo.at("B3")
    # Measured where the delay is seen: reviews' call to ratings, asked for from productpage (the only caller
    # reviews admits) as productpage asks for it, with jason's cookie.
    productpage = mesh.pod_of(NAMESPACE, "productpage", "v1")

    def delayed() -> dict[str, Any] | None:
        answer = mesh.fetch(NAMESPACE, productpage, "http://reviews:9080/reviews/0", "Cookie: a=b; user=jason")
        ratings = call(answer.get("body") or {}, "ratings")
        return answer if ratings and ratings["latency_ms"] > 5000 else None

    answer = wait_for("the 7 s delay on jason's ratings call", delayed, timeout=180, interval=1)
    ratings = call(answer["body"], "ratings")
    assert ratings is not None and ratings["status"] == 200
    assert 6500 <= ratings["latency_ms"] <= 9000, ratings
    # productpage gives reviews 3 s and one retry: jason's page shows Bookinfo's "unavailable" after about 6 s.
    page = bookinfo.page(JASON)
    reviews = call(page, "reviews")
    assert reviews is not None and reviews["status"] != 200 and reviews["attempts"] == 2, reviews
    assert 5.5 <= page["seconds"] <= 9, page["seconds"]
    # Nobody else is delayed.
    assert bookinfo.page()["seconds"] < 2


def test_b4_ratings_answers_500_to_jason_only(bookinfo: Bookinfo) -> None:
    bookinfo.at("B4")

    def aborted() -> bool:
        ratings = call(bookinfo.page(JASON), "ratings")
        return ratings is not None and ratings["status"] == 500

    wait_for("the abort of jason's ratings call", aborted)
    for _ in range(30):
        ratings = call(bookinfo.page(JASON), "ratings")
        assert ratings is not None and ratings["status"] == 500, ratings
    status, html, _ = bookinfo.mesh.gateway(PAGE, JASON)
    assert status == 200 and "Ratings service is currently unavailable" in html
    assert bookinfo.versions(50) == {"v1": 50}


def test_b5_half_of_reviews_answers_come_from_v3(bookinfo: Bookinfo) -> None:
    bookinfo.at("B5")
    wait_for("reviews v3 answering", lambda: bookinfo.reviews_version() == "v3", interval=0.05)
    counts = bookinfo.versions(1000)
    problems = within_split({str(k): v for k, v in counts.items()}, {"v1": 50, "v3": 50})
    assert not problems, f"B5's split: {problems} ({counts})"


def browse(url: str, artifacts: Path) -> str:
    """The DOM headless Chromium renders for ``url`` (redirects and cookies followed); the page and a
    screenshot are kept in ``artifacts`` (test-artifacts/browser/ of the checkout, for CI to keep)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={artifacts / 'profile'}"]  # fmt: skip
    shutil.rmtree(artifacts / "profile", ignore_errors=True)
    subprocess.run([*flags, f"--screenshot={artifacts / 'page.png'}", "--window-size=1000,700", url],
                   capture_output=True, timeout=120, check=False)  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    (artifacts / "page.html").write_text(dom)
    return dom


def plain_client(mesh: Mesh) -> str:
    """A pod outside the mesh (a namespace without injection), running the stand-in."""
    if not mesh.pods("plain"):
        mesh.kubectl("create", "namespace", "plain", check=False)
        mesh.kubectl("run", "plain", "-n", "plain", "--image", "docker.io/library/nginx:1.14",
                     "--image-pull-policy", "Never", "--restart", "Never")  # fmt: skip
    wait_for("the plain client to serve", lambda: mesh.fetch("plain", "plain", "http://127.0.0.1:80/")["status"] == 200)
    return "plain"
