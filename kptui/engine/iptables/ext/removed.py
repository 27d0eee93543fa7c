"""Targets iptables 1.8.9 still knows but Linux 6.18 no longer has: ULOG (removed in
3.17, for NFLOG) and CLUSTERIP (removed from recent kernels). iptables-nft accepts
their options, then the kernel refuses the rule; kptui's modern box is that kernel,
so it refuses them with the same words (checked on this machine)."""

from __future__ import annotations

from typing import ClassVar

from kptui.engine.iptables.matches import Opt
from kptui.engine.iptables.targets import Target
from kptui.engine.iptables.values import BadValue


class _Gone(Target):
    options: ClassVar[dict[str, Opt]] = {}
    gone: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        raise BadValue(f"Extension {self.name} revision 0 not supported, missing kernel "
                       "module? (Linux 6.18 has no such target)")


class UlogTarget(_Gone):
    name = "ULOG"


class ClusteripTarget(_Gone):
    name = "CLUSTERIP"


TARGETS = (UlogTarget, ClusteripTarget)
