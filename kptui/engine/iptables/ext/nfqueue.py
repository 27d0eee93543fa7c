"""-j NFQUEUE (libxt_NFQUEUE 1.8.9 revision 3, xt_NFQUEUE.c): hand the packet to a
userspace program through nfnetlink_queue.

A kptui box runs no program that binds a queue, so what the kernel does is
nf_queue's answer when nobody listens (net/netfilter/nf_queue.c, nf_hook_slow):
nfqnl_enqueue_packet finds no instance and returns -ESRCH; nf_queue then frees
the skb (the packet is dropped) unless the verdict carries
NF_VERDICT_FLAG_QUEUE_BYPASS (--queue-bypass), in which case it returns 1 and
nf_hook_slow goes on with the next hook function: the packet continues as if
this table's base chain had accepted it (the rest of the chain is skipped, the
next table at this hook and the later hooks still run). Which of several
--queue-balance queues a flow hashes to (jhash with a boot-time random seed)
does not matter then: none has a listener.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget


class NfqueueTarget(XtTarget):
    name = "NFQUEUE"
    verdict = "QUEUE"
    entries = (Entry("queue-num", XT.UINT16, excl=("queue-balance",)),
               # .max = UINT16_MAX - 1 is not used by xtopt for RC types: 0:65535 passes
               # iptables and the kernel refuses it (queues_total 65536 is 0 in a u16)
               Entry("queue-balance", XT.UINT16RC, excl=("queue-num",)),
               Entry("queue-bypass"),
               Entry("queue-cpu-fanout", also=("queue-balance",)))

    def __init__(self) -> None:
        super().__init__()
        self.num = 0
        self.total = 1  # queues_total (NFQUEUE_init_v1)
        self.bypass = False
        self.fanout = False
        self.arg = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """NFQUEUE_parse_v3."""
        if name == "queue-num":
            self.num = value
        elif name == "queue-balance":
            if len(value) != 2:
                raise BadValue(f'Bad range "{self.arg}"')
            lo, hi = value
            if lo >= hi:
                raise BadValue(f"{lo} should be less than {hi}")
            self.num, self.total = lo, (hi - lo + 1) & 0xFFFF  # queues_total is a u16
        elif name == "queue-bypass":
            self.bypass = True
        else:
            self.fanout = True

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.arg = args[0] if args else ""  # cb->arg, for the messages
        super().option(opt, args, inv)

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        if self.total == 0:  # nfqueue_tg_check
            raise BadValue(f"NFQUEUE: --queue-balance {self.num}:65535 is 65536 queues, 0 in "
                           "the kernel's 16-bit queues_total (the kernel refuses it: Invalid "
                           "argument)")

    def queues(self) -> str:
        return f"{self.num}:{self.num + self.total - 1}" if self.total > 1 else str(self.num)

    def save(self) -> str:
        """NFQUEUE_save_v3."""
        out = [f"--queue-balance {self.queues()}" if self.total > 1
               else f"--queue-num {self.num}"]
        if self.bypass:
            out.append("--queue-bypass")
        if self.fanout:
            out.append("--queue-cpu-fanout")
        return " ".join(out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        if not self.bypass:
            return TargetResult("QUEUE", detail=f"queue {self.queues()}")
        if getattr(ctx, "table", "") == "nat":
            # nf_nat_inet_fn returns the verdict before its null binding: not modelled
            raise UnsupportedError("-j NFQUEUE --queue-bypass in the nat table")
        return TargetResult("ACCEPT", detail=f"queue {self.queues()} has no listener: "
                                             "--queue-bypass lets the packet go on as if "
                                             "this chain accepted it (nf_queue -ESRCH)")


TARGETS = (NfqueueTarget,)
