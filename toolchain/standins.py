"""Which stand-in answers for which image on the local cluster's real node.

Images named in stack files cannot be pulled here. The real node holds, under each name below, an image of
meshkit's stand-in workload (toolchain/standin/) told by its environment what to play: the port it serves,
the services it calls (Bookinfo's call graph, with Bookinfo's own client timeouts) and the stars reviews
shows. A stack deploys exactly as written; only these images on this node are stand-ins (labelled
``dev.meshkit.standin=true``), and an image not listed here is not on the node: its pods stay in
ErrImageNeverPull / ImagePullBackOff, as they would with a registry that does not have them.

Each pod reports its own version: from its name (the Deployment meshkit named ``<service>-<version>``), not
from the image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandIn:
    service: str
    port: int
    calls: str = ""
    """``name:port[:timeout[:retries]]``, comma separated: Bookinfo's productpage calls details and reviews
    (3 s, one retry for reviews); reviews v2 and v3 call ratings (10 s)."""
    stars: str = ""

    def environment(self) -> list[str]:
        env = [f"STANDIN_SERVICE={self.service}", f"STANDIN_PORT={self.port}"]
        env += [f"STANDIN_CALLS={self.calls}"] if self.calls else []
        env += [f"STANDIN_STARS={self.stars}"] if self.stars else []
        return env


BOOKINFO = "docker.io/istio/examples-bookinfo-{}:1.20.2"
PRODUCTPAGE_CALLS = "details:9080:3s,reviews:9080:3s:1"

STANDINS: dict[str, StandIn] = {
    # Scenario A: nginx serves on 80; the client (curl) runs `sleep` and is exec'd into.
    "nginx:1.14": StandIn("nginx", 80),
    "nginx:1.15": StandIn("nginx", 80),
    "curlimages/curl:8.11.1": StandIn("sleep", 8080),
    # Scenario B: Istio's Bookinfo.
    BOOKINFO.format("productpage-v1"): StandIn("productpage", 9080, calls=PRODUCTPAGE_CALLS),
    BOOKINFO.format("details-v1"): StandIn("details", 9080),
    BOOKINFO.format("reviews-v1"): StandIn("reviews", 9080),
    BOOKINFO.format("reviews-v2"): StandIn("reviews", 9080, calls="ratings:9080:10s", stars="black"),
    BOOKINFO.format("reviews-v3"): StandIn("reviews", 9080, calls="ratings:9080:10s", stars="red"),
    BOOKINFO.format("ratings-v1"): StandIn("ratings", 9080),
}


def normalized(image: str) -> str:
    """The name containerd's CRI gives an image reference: ``nginx:1.14`` is docker.io/library/nginx:1.14."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image
