"""A small client of Prometheus's HTTP API: instant queries (``/api/v1/query``) and nothing else.

Two endpoints' worth of HTTP does not earn a dependency: the standard library's ``urllib`` speaks it, with no
proxy ever (``HTTP_PROXY`` in the environment must not send a query elsewhere): only the address the stack
file names is asked. Every failure (no answer, an HTTP error, a query Prometheus refuses, an answer that is
not Prometheus's) is a :class:`PrometheusError` whose message names the address and what happened: a gate
treats it as "no evidence", never as a pass.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from meshkit.errors import MeshkitError

DEFAULT_TIMEOUT_SECONDS = 10.0


class PrometheusError(MeshkitError):
    """Prometheus did not answer, or not with a result: the message says which address and what happened."""


# No proxy handler: the environment's HTTP_PROXY/HTTPS_PROXY are never used.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Prometheus:
    """The Prometheus HTTP API at ``address`` (``http://127.0.0.1:9090``, a path prefix allowed)."""

    address: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    _opener: Any = field(default=_OPENER, repr=False, compare=False)

    def query(self, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query's vector: (labels, value) per series; a scalar answer is one series without labels.
        ``at``: the evaluation time (Unix seconds), so that several queries see one moment."""
        form = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        body = self._post("/api/v1/query", form, promql)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._error(promql, f"an answer without data: {str(body)[:200]}")
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "scalar":
                return [({}, float(result[1]))]  # type: ignore[index]
            if kind == "vector":
                return [(dict(item["metric"]), float(item["value"][1])) for item in result]  # type: ignore[union-attr]
        except (TypeError, KeyError, IndexError, ValueError):
            pass
        raise self._error(promql, f"an answer that is not an instant vector: {str(data)[:200]}")

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The one number a query of a sum or a quantile gives; None when it selects no series or is NaN."""
        series = self.query(promql, at)
        if len(series) > 1:
            raise self._error(promql, f"{len(series)} series where one number was expected")
        if not series or math.isnan(series[0][1]):
            return None
        return series[0][1]

    def _error(self, promql: str, what: str) -> PrometheusError:
        return PrometheusError(f"Prometheus at {self.address}: query {promql!r}: {what}")

    def _post(self, path: str, form: dict[str, str], promql: str) -> dict[str, Any]:
        url = self.address.rstrip("/") + path
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )  # fmt: skip
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            text = error.read()
            detail = _error_text(text) or f"HTTP {error.code} {error.reason}"
            raise self._error(promql, f"refused: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise PrometheusError(
                f"Prometheus at {self.address} did not answer ({reason}): is it running, and is "
                "meshkit:prometheus.address where it listens?"
            ) from None
        try:
            body = json.loads(text)
        except ValueError:
            raise self._error(promql, f"an answer that is not JSON: {text[:120]!r}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise self._error(promql, f"refused: {_error_text(text) or str(body)[:200]}")
        return body


def _error_text(text: bytes) -> str:
    """Prometheus's own error message from an error answer (``{"status": "error", "error": ...}``), or ''."""
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("error"):
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return ""
