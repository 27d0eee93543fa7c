"""-m bpf (libxt_bpf 1.8.9 revision 1, xt_bpf.c): a classic BPF program, or a pinned one.

Parsed and printed as iptables 1.8.9 does (its sscanf reading of the bytecode
included: ``65537,...`` is a length of 1), and the program checked as the kernel's
bpf_check_classic checks it (net/core/filter.c), so a program the kernel refuses is
refused. A classic program is run as the kernel runs it (bpf_convert_filter's
rewrite of it, net/core/filter.c) on the packet's bytes from the IP header on;
it matches when it returns non-zero. A load past the packet, or a division or
modulo by an X of 0, ends the program with 0. Of the ancillary loads
(SKF_AD_OFF + n) the protocol, pkttype, mark, queue and payload offset are the
packet's; the others (ifindex, rxhash, cpu, random, vlan, netlink attributes)
and link-layer loads (SKF_LL_OFF) stop the walk, named. An ``--object-pinned``
path (an eBPF object on bpffs) is accepted and printed, not run.
Kernel-verified: tests/kernel/scenarios/ext-bpf.toml.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import kernel_refuses, scanf_uint
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_BPF_MAX_NUM_INSTR = 64
XT_BPF_PATH_MAX = 512
BPF_MEMWORDS = 16
SKF_AD_OFF = 0xFFFFF000  # (u32)-0x1000: ancillary loads from here on
SKF_AD_MAX = 64  # SKF_AD_PROTOCOL (0) .. SKF_AD_VLAN_TPID (60), in steps of 4

Insn = tuple[int, int, int, int]  # code, jt, jf, k

# chk_code_allowed: every opcode classic BPF has
_ALU = [0x04 | op | src for op in (0x00, 0x10, 0x20, 0x30, 0x90, 0x50, 0x40, 0xA0, 0x60, 0x70)
        for src in (0x00, 0x08)] + [0x84]
_LOADS = [0x20, 0x28, 0x30, 0x80, 0x40, 0x48, 0x50, 0x00, 0x60, 0x81, 0xB1, 0x01, 0x61]
_JUMPS = [0x05] + [0x05 | op | src for op in (0x10, 0x30, 0x20, 0x40) for src in (0x00, 0x08)]
ALLOWED = frozenset(_ALU + _LOADS + [0x02, 0x03, 0x07, 0x87, 0x06, 0x16] + _JUMPS)
_COND_JUMPS = frozenset(_JUMPS[1:])
_ABS_LOADS = frozenset({0x20, 0x28, 0x30})
_MEM = frozenset({0x60, 0x61, 0x02, 0x03})  # LD|MEM, LDX|MEM, ST, STX


def check_classic(prog: list[Insn]) -> bool:
    """bpf_check_classic, then check_load_and_stores: True if the kernel takes it."""
    n = len(prog)
    for pc, (code, jt, jf, k) in enumerate(prog):
        if code not in ALLOWED:
            return False
        if code in (0x34, 0x94) and k == 0:  # DIV/MOD by a zero constant
            return False
        if code in (0x64, 0x74) and k >= 32:  # LSH/RSH by 32 or more
            return False
        if code in _MEM and k >= BPF_MEMWORDS:
            return False
        if code == 0x05 and k >= n - pc - 1:  # JA out of the program
            return False
        if code in _COND_JUMPS and (pc + jt + 1 >= n or pc + jf + 1 >= n):
            return False
        if code in _ABS_LOADS and k >= SKF_AD_OFF and \
                not (k - SKF_AD_OFF < SKF_AD_MAX and (k - SKF_AD_OFF) % 4 == 0):
            return False
    if prog[-1][0] not in (0x06, 0x16):  # must end in RET K or RET A
        return False
    # check_load_and_stores: no scratch cell read before every path wrote it
    masks = [0xFFFF] * n
    valid = 0
    for pc, (code, jt, jf, k) in enumerate(prog):
        valid &= masks[pc]
        if code in (0x02, 0x03):
            valid |= 1 << k
        elif code in (0x60, 0x61):
            if not valid >> k & 1:
                return False
        elif code == 0x05:
            masks[pc + 1 + k] &= valid
            valid = 0xFFFF
        elif code in _COND_JUMPS:
            masks[pc + 1 + jt] &= valid
            masks[pc + 1 + jf] &= valid
            valid = 0xFFFF
    return True


def parse_bytecode(text: str) -> list[Insn]:
    """bpf_parse_string: ``N,code jt jf k,...`` read with sscanf as 1.8.9 reads it."""
    length, rest = scanf_uint(text, 16)
    if length is None or rest[:1] != ",":
        raise BadValue("bpf: error parsing program length")
    if not length:
        raise BadValue("bpf: illegal zero length program")
    if length > XT_BPF_MAX_NUM_INSTR:
        raise BadValue("bpf: number of instructions exceeds maximum")
    prog: list[Insn] = []
    at = text.find(",")
    while at >= 0 and at + 1 < len(text):
        token = text[at + 1:]
        if len(prog) >= length:
            raise BadValue("bpf: real program length exceeds the encoded length parameter")
        fields = []
        for bits in (16, 8, 8, 32):  # "%hu %hhu %hhu %u"
            value, token = scanf_uint(token, bits)
            if value is None:
                raise BadValue(f"bpf: error at instr {len(prog)}")
            fields.append(value)
        prog.append((fields[0], fields[1], fields[2], fields[3]))
        at = text.find(",", at + 1)
    if len(prog) != length:
        raise BadValue("bpf: parsed program length is less than the encoded length parameter")
    return prog


class BpfMatch(XtMatch):
    name = "bpf"
    entries = (Entry("bytecode", XT.STRING), Entry("object-pinned", XT.STRING))

    def __init__(self) -> None:
        super().__init__()
        self.prog: list[Insn] = []
        self.path = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "bytecode":
            self.prog = parse_bytecode(value)
        else:  # XTOPT_PUT into char path[512]
            raw = value.encode("utf-8", "surrogateescape")[:XT_BPF_PATH_MAX - 1]
            self.path = raw.decode("utf-8", "surrogateescape")

    def finish(self) -> None:
        given = {"--bytecode", "--object-pinned"} & self.seen
        if len(given) != 1:
            raise BadValue("bpf: one of --bytecode or --pinned is required")
        self.fcheck()
        if self.prog and not check_classic(self.prog):
            raise BadValue(kernel_refuses("xt_bpf: check failed: parse error"))

    def save(self) -> str:
        if self.path:
            return f"--object-pinned {self.path}"
        code = ",".join(f"{c} {t} {f} {k}" for c, t, f, k in self.prog)
        return f'--bytecode "{len(self.prog)},{code}"'


    def test(self, pkt: Any, ctx: Any) -> str | None:
        if self.path:
            raise UnsupportedError(f"-m bpf --object-pinned {self.path} (an eBPF program "
                                   "on bpffs is not run)")
        result = run_classic(self.prog, pkt, ctx)
        return None if result else "the program returns 0"


SKF_NET_OFF = 0xFFF00000  # (u32)-0x100000: loads relative to the network header
SKF_LL_OFF = 0xFFE00000  # (u32)-0x200000: relative to the link-layer header
PKTTYPES = {"host": 0, "broadcast": 1, "multicast": 2, "otherhost": 3}
M32 = 0xFFFFFFFF


class _Stop(Exception):
    """The program ends here with 0 (a failed load, a division by X = 0)."""


def _ancillary(k: int, pkt: Any, ctx: Any) -> int:
    """SKF_AD_* loads: what the kernel puts in A for them, or unsupported."""
    n = k - SKF_AD_OFF
    if n == 0:
        return 0x0800  # SKF_AD_PROTOCOL: ntohs(skb->protocol), ETH_P_IP
    if n == 4:
        return PKTTYPES[ctx.pkttype]  # skb->pkt_type, as -m pkttype reads it
    if n == 20:
        return pkt.meta.mark
    if n == 24:
        return 0  # SKF_AD_QUEUE: skb->queue_mapping, one queue a device here
    names = {8: "ifindex", 12: "nlattr", 16: "nlattr_nest", 28: "hatype", 32: "rxhash",
             36: "cpu", 40: "alu_xor_x", 44: "vlan_tag", 48: "vlan_tag_present",
             52: "pay_offset", 56: "random", 60: "vlan_tpid"}
    raise UnsupportedError(f"-m bpf's ancillary load SKF_AD_{names.get(n, n)} "
                           "(not modelled)")


def _load(data: bytes, k: int, size: int, pkt: Any, ctx: Any) -> int:
    if k >= SKF_AD_OFF and size == 4:
        return _ancillary(k, pkt, ctx)
    if SKF_LL_OFF <= k < SKF_NET_OFF:
        raise UnsupportedError("-m bpf's link-layer loads (SKF_LL_OFF: the frame's header "
                               "is not modelled)")
    if k >= SKF_NET_OFF:
        k -= SKF_NET_OFF  # the network header is where the data starts here
    if k + size > len(data):
        raise _Stop
    return int.from_bytes(data[k:k + size], "big")


_SIZES = {0x00: 4, 0x08: 2, 0x10: 1}  # BPF_W, BPF_H, BPF_B
_ALU_OPS = {
    0x00: lambda a, b: a + b, 0x10: lambda a, b: a - b, 0x20: lambda a, b: a * b,
    0x30: lambda a, b: a // b, 0x90: lambda a, b: a % b, 0x50: lambda a, b: a & b,
    0x40: lambda a, b: a | b, 0xA0: lambda a, b: a ^ b, 0x60: lambda a, b: a << (b & 31),
    0x70: lambda a, b: a >> (b & 31),
}
_JMP_OPS = {0x10: lambda a, b: a == b, 0x20: lambda a, b: a > b,
            0x30: lambda a, b: a >= b, 0x40: lambda a, b: bool(a & b)}


def run_classic(prog: list[Insn], pkt: Any, ctx: Any) -> int:
    """The program's return value for the packet (checked programs only: check_classic)."""
    data = pkt.to_bytes()
    a = x = 0
    mem = [0] * BPF_MEMWORDS
    pc = 0
    try:
        while True:
            code, jt, jf, k = prog[pc]
            pc += 1
            cls = code & 0x07
            if cls in (0x00, 0x01):  # LD, LDX
                mode, size = code & 0xE0, _SIZES.get(code & 0x18, 4)
                if mode == 0x00:  # IMM
                    value = k
                elif mode == 0x20:  # ABS
                    value = _load(data, k, size, pkt, ctx)
                elif mode == 0x40:  # IND
                    value = _load(data, (x + k) & M32, size, pkt, ctx)
                elif mode == 0x60:  # MEM
                    value = mem[k]
                elif mode == 0x80:  # LEN
                    value = pkt.length
                else:  # 0xA0 MSH: ldxb 4*([k]&0xf)
                    value = (_load(data, k, 1, pkt, ctx) & 0xF) << 2
                if cls == 0x00:
                    a = value
                else:
                    x = value
            elif cls in (0x02, 0x03):  # ST, STX
                mem[k] = a if cls == 0x02 else x
            elif cls == 0x04:  # ALU
                op = code & 0xF0
                if op == 0x80:  # NEG
                    a = -a & M32
                    continue
                b = x if code & 0x08 else k
                if op in (0x30, 0x90) and b == 0:
                    raise _Stop  # bpf_convert_filter's "X == 0: return 0"
                a = _ALU_OPS[op](a, b) & M32
            elif cls == 0x05:  # JMP
                op = code & 0xF0
                if op == 0x00:
                    pc += k
                else:
                    b = x if code & 0x08 else k
                    pc += jt if _JMP_OPS[op](a, b) else jf
            elif cls == 0x06:  # RET
                return (a if code & 0x18 == 0x10 else k) & M32
            else:  # MISC: TAX / TXA
                if code & 0xF8 == 0x00:
                    x = a
                else:
                    a = x
    except _Stop:
        return 0


MATCHES = (BpfMatch,)
