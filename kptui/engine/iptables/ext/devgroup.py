"""-m devgroup (libxt_devgroup 1.8.9, xt_devgroup.c): the in/out device's group.

Every interface of a kptui box is in group 0, "default" (the kernel's default;
`ip link set DEV group N` is refused as unsupported), so the match is exact.
Group names are /etc/iproute2/group's as Debian ships it (0 is "default"),
which is also how iptables-save prints them.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, strtoul_prefix

GROUP_NAMES = {"default": 0}  # /etc/iproute2/group
_GROUP_OF_NUMBER = {v: k for k, v in GROUP_NAMES.items()}
DEVICE_GROUP = 0  # every interface's group in a kptui box

# xt_devgroup checkentry: which hooks each option may be used in (else -EINVAL)
_SRC_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD"})
_DST_CHAINS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})


def _val_mask(ext: str, opt: str, arg: str) -> tuple[int, int]:
    """xtables_parse_val_mask with the group names: value[/mask], or a name."""
    value, rest = strtoul_prefix(arg)
    if value is not None and value <= 0xFFFFFFFF:
        if rest == "":
            return value, 0xFFFFFFFF
        if rest.startswith("/"):
            mask, tail = strtoul_prefix(rest[1:])
            if mask is None or mask > 0xFFFFFFFF:
                raise BadValue(f'{ext}: bad integer value for option "--{opt}", '
                               "or out of range.")
            if tail == "":
                return value, mask
        elif arg not in GROUP_NAMES:
            raise BadValue(f'{ext}: trailing garbage after value for option "--{opt}".')
    if arg in GROUP_NAMES:
        return GROUP_NAMES[arg], 0xFFFFFFFF
    raise BadValue(f'{ext}: could not map name {arg} to an integer value for option '
                   f'"--{opt}".')


def _val_mask_text(value: int, mask: int) -> str:
    """xtables_print_val_mask with the group names."""
    if mask != 0xFFFFFFFF:
        return f"0x{value:x}/0x{mask:x}"
    return _GROUP_OF_NUMBER.get(value, f"0x{value:x}")


class DevgroupMatch(XtMatch):
    name = "devgroup"
    entries = (Entry("src-group", XT.STRING, invert=True),
               Entry("dst-group", XT.STRING, invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, tuple[int, int, bool]] = {}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        group, mask = _val_mask(self.name, name, value)
        self.groups[name] = (group, mask, inv)

    def check(self) -> None:
        if not self.groups:
            raise BadValue("devgroup match: You must specify either '--src-group' or "
                           "'--dst-group'")

    def allowed_chains(self) -> frozenset[str] | None:
        allowed = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
        if "src-group" in self.groups:
            allowed &= _SRC_CHAINS
        if "dst-group" in self.groups:
            allowed &= _DST_CHAINS
        return allowed

    def save(self) -> str:
        return " ".join(f"{'! ' if inv else ''}--{name} {_val_mask_text(group, mask)}"
                        for name in ("src-group", "dst-group") if name in self.groups
                        for group, mask, inv in [self.groups[name]])

    def test(self, pkt: Any, ctx: Any) -> str | None:
        for name, (group, mask, inv) in self.groups.items():
            dev = ctx.iif if name == "src-group" else ctx.oif
            differs = bool((group ^ DEVICE_GROUP) & mask)
            if differs != inv:
                return (f"{'in' if name == 'src-group' else 'out'} device {dev} is in group "
                        f"{DEVICE_GROUP}, {'' if inv else 'not '}"
                        f"{_val_mask_text(group, mask)}")
        return None


MATCHES = (DevgroupMatch,)
