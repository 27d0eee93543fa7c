"""-m realm (libipt_realm 1.8.9, xt_realm.c): the route's realm (dst->tclassid).

realm_mt: (dst->tclassid & mask) == id, `!` inverting it. A kptui route has no
realm (setup refuses `ip route ... realm N` and `ip rule ... realms`, as not
modelled), so the tclassid the kernel compares is 0 on every route: the match is
simulated with that. Kernel-verified: tests/kernel/scenarios/ext-realm.toml.
Names are /etc/iproute2/rt_realms as iproute2 ships it (0 is "cosmos");
iptables-save prints a realm by its name when it has one.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext.l4common import U32_MAX, strtoui
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

REALM_NAMES = {"cosmos": 0}  # /etc/iproute2/rt_realms
_NAME_OF = {v: k for k, v in REALM_NAMES.items()}


def parse_val_mask(ext: str, opt: str, arg: str, names: dict[str, int]) -> tuple[int, int]:
    """xtables_parse_val_mask with a name map (lmap): value[/mask], or a name."""
    value, rest = strtoui(arg)
    if value is not None:
        if rest == "":
            return value, U32_MAX
        if rest.startswith("/"):
            mask, tail = strtoui(rest[1:])
            if mask is None:
                raise BadValue(f'{ext}: bad integer value for option "--{opt}", '
                               "or out of range.")
            if tail == "":
                return value, mask
            raise BadValue(f'{ext}: trailing garbage after value for option "--{opt}".')
    if arg in names:
        return names[arg], U32_MAX
    raise BadValue(f'{ext}: could not map name {arg} to an integer value for option '
                   f'"--{opt}".')


def val_mask_text(value: int, mask: int, names: dict[int, str]) -> str:
    """xtables_print_val_mask."""
    if mask != U32_MAX:
        return f"0x{value:x}/0x{mask:x}"
    return names.get(value, f"0x{value:x}")


class RealmMatch(XtMatch):
    name = "realm"
    entries = (Entry("realm", XT.STRING, mand=True, invert=True),)
    # realm_mt_reg.hooks (else the kernel refuses the rule: Invalid argument)
    chains = frozenset({"INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})

    def __init__(self) -> None:
        super().__init__()
        self.id, self.mask, self.inv = 0, U32_MAX, False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.id, self.mask = parse_val_mask(self.name, name, value, REALM_NAMES)
        self.inv = inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--realm {val_mask_text(self.id, self.mask, _NAME_OF)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        tclassid = 0  # no route of a kptui box has a realm
        if ((tclassid & self.mask) == self.id) != self.inv:
            return None
        return "the route's realm is 0" + (", and the rule says !" if self.inv else "")


MATCHES = (RealmMatch,)
