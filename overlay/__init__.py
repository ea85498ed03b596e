"""The multi-cloud overlay: one WireGuard gateway per cloud per cluster, routed by the clouds.

``plan`` decides (pure), ``keys`` and ``gateway_config`` make the gateways' secrets and files,
``ec2_apply`` asks each cloud for addresses, forwarding, security-group rules and routes,
``node_apply`` writes the gateways' files over SSH and probes node to node, ``state`` keeps
what was made per cluster, and ``network.OverlayNetwork`` puts them together behind the
cluster's network seam (resilin.cluster.network).
"""
