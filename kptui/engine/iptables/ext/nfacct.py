"""-m nfacct (libxt_nfacct 1.8.9, revision 1; xt_nfacct.c): parsed and printed.

The kernel refuses a rule whose accounting object does not exist (ENOENT), and a
kptui box has none: there is no `nfacct add` among the setup commands. So every
nfacct rule is refused, in the kernel's words, after iptables' own checks.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._kernel import kernel_refuses, truncate
from kptui.engine.iptables.values import BadValue, save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

NFACCT_NAME_MAX = 32


class NfacctMatch(XtMatch):
    name = "nfacct"
    entries = (Entry("nfacct-name", XT.STRING, mand=True, min=1),)

    def __init__(self) -> None:
        super().__init__()
        self.acct = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if "\n" in value:
            raise BadValue("Newlines not allowed in --nfacct-name")
        self.acct = truncate(value, NFACCT_NAME_MAX)

    def finish(self) -> None:
        super().finish()
        raise kernel_refuses(f"nfacct: no accounting object {self.acct!r} (kptui has no "
                             "nfacct objects)", "No such file or directory")

    def save(self) -> str:
        return f"--nfacct-name {save_string(self.acct)}"


MATCHES = (NfacctMatch,)
