"""-m cluster (libxt_cluster 1.8.9, xt_cluster.c): parsed and printed, not simulated.

``--cluster-local-node N`` is saved as the mask ``--cluster-local-nodemask``
1 << (N - 1). The match hashes the connection's original source address
(jhash with the seed) into a node number and also turns multicast packets into
PACKET_HOST ones; kptui does not model that.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_CLUSTER_NODES_MAX = 32


class ClusterMatch(XtMatch):
    name = "cluster"
    entries = (
        Entry("cluster-total-nodes", XT.UINT32, mand=True, min=1, max=XT_CLUSTER_NODES_MAX),
        Entry("cluster-local-node", XT.UINT32, invert=True, min=1, max=XT_CLUSTER_NODES_MAX,
              excl=("cluster-local-nodemask",)),
        Entry("cluster-local-nodemask", XT.UINT32, invert=True, min=1,
              max=XT_CLUSTER_NODES_MAX, excl=("cluster-local-node",)),
        Entry("cluster-hash-seed", XT.UINT32, mand=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.node_mask = 0
        self.inv = False
        self.seed = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "cluster-total-nodes":
            self.total = value
        elif name == "cluster-local-node":
            self.node_mask, self.inv = 1 << (value - 1), self.inv or inv
        elif name == "cluster-local-nodemask":
            self.node_mask, self.inv = value, self.inv or inv
        else:
            self.seed = value

    def check(self) -> None:
        """cluster_check."""
        given = {o[2:] for o in self.seen}
        for mask_opt, why in (("cluster-local-node", "`--cluster-local-node' must be <= "
                               "`--cluster-total-nodes'"),
                              ("cluster-local-nodemask", "`--cluster-local-nodemask' too big "
                               "for `--cluster-total-nodes'")):
            if {"cluster-total-nodes", mask_opt, "cluster-hash-seed"} <= given:
                if self.node_mask >= 1 << self.total:
                    raise BadValue(f"cluster match: {why}")
                return
        if not given & {"cluster-local-node", "cluster-local-nodemask"}:
            raise BadValue("cluster match: `--cluster-local-node' or"
                           "`--cluster-local-nodemask' is missing")

    def save(self) -> str:
        return (f"{'! ' if self.inv else ''}--cluster-local-nodemask 0x{self.node_mask:08x} "
                f"--cluster-total-nodes {self.total} --cluster-hash-seed 0x{self.seed:08x}")


MATCHES = (ClusterMatch,)
