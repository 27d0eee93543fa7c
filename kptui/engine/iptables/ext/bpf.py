"""-m bpf (libxt_bpf 1.8.9 revision 1, xt_bpf.c): a classic BPF program, or a pinned one.

Parsed and printed as iptables 1.8.9 does (its sscanf reading of the bytecode
included: ``65537,...`` is a length of 1), and the program checked as the kernel's
bpf_check_classic checks it (net/core/filter.c), so a program the kernel refuses is
refused. Not simulated: running the program is left to a later change. An
``--object-pinned`` path is accepted and printed (kptui's box has no bpffs to look
in; iptables opens the object when it parses the rule).
"""

from __future__ import annotations

from typing import Any

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


MATCHES = (BpfMatch,)
