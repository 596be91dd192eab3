"""Layer 2, the mesh: pure functions from the config models to Kubernetes, Istio and Gateway API objects
(plain manifest dicts), and the checks of a whole stack (cross-object rules, schema conformance).

One module per API: :mod:`~meshkit.mesh.workloads` (Kubernetes' own objects),
:mod:`~meshkit.mesh.security` (PeerAuthentication, AuthorizationPolicy), :mod:`~meshkit.mesh.istio`
(DestinationRule, VirtualService), :mod:`~meshkit.mesh.gatewayapi` (HTTPRoute, waypoints) and
:mod:`~meshkit.mesh.ingress` (Gateway and its VirtualService), over the helpers of
:mod:`~meshkit.mesh.manifest`. :mod:`~meshkit.mesh.order` puts a whole stack together as one deployment graph
(every object, its unit, and the order rules that keep traffic safe), which :mod:`~meshkit.mesh.render` reads.
Nothing here imports Pulumi, reads the clock or the environment.
"""
