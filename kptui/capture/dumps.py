"""Where a capture's raw material comes from: commands run on this box, or files of dumps.

Both give the same thing, a ``Dumps``: for each dump kptui reads (``CATALOGUE``), its
text and where it came from (a file path, or the command line), so every parser can
name the file and line of a mistake. A dump that is not there is a *gap*: named in a
note of the scenario (what is then missing from it), never a crash.

`kptui capture --from DIR` reads the files a user made on another machine with the
README's one-liner (``ONE_LINER``, the same commands); `kptui capture` runs them here.
The tc classes and filters are per device (and filters per parent), so their files are
``tc-class-DEV.txt`` and ``tc-filter-DEV-PARENT.json``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kptui.engine.errors import KptuiError


@dataclass(frozen=True, slots=True)
class Source:
    """One dump: its file name in a dump directory, the command that makes it, what it is."""

    file: str
    argv: tuple[str, ...]
    what: str
    required: bool = False


CATALOGUE: dict[str, Source] = {
    "link": Source("ip-link.json", ("ip", "-d", "-j", "link", "show"),
                   "the interfaces (kind, mtu, up/down)", required=True),
    "addr": Source("ip-addr.json", ("ip", "-j", "addr", "show"), "the addresses",
                   required=True),
    "route": Source("ip-route.json", ("ip", "-4", "-d", "-N", "-j", "route", "show", "table",
                                      "all"), "every routing table"),
    "rule": Source("ip-rule.json", ("ip", "-4", "-d", "-N", "-j", "rule", "show"),
                   "the routing rules (ip rule)"),
    "iptables": Source("iptables-save.txt", ("iptables-nft-save",),
                       "the iptables ruleset (nf_tables backend)"),
    "iptables_legacy": Source("iptables-legacy-save.txt", ("iptables-legacy-save",),
                              "the legacy iptables ruleset"),
    "ipset": Source("ipset-save.txt", ("ipset", "save"), "the ipset sets"),
    "nft": Source("nft-ruleset.txt", ("nft", "list", "ruleset"),
                  "the nftables ruleset (native tables)"),
    "tc_qdisc": Source("tc-qdisc.json", ("tc", "-j", "qdisc", "show"), "the tc qdiscs"),
    "sysctl": Source("sysctl.txt", ("sysctl", "-a"), "the sysctls"),
    "conntrack": Source("conntrack.txt", ("conntrack", "-L"), "the conntrack table"),
    "rt_tables": Source("rt-tables.txt", ("cat", "/etc/iproute2/rt_tables"),
                        "the routing table names"),
}
CLASS_ARGV = ("tc", "-d", "-j", "class", "show", "dev")
FILTER_ARGV = ("tc", "-j", "filter", "show", "dev")

# What to run on the other machine, in an empty directory (README: kptui capture --from).
ONE_LINER = (
    "ip -d -j link show > ip-link.json; ip -j addr show > ip-addr.json; "
    "ip -4 -d -N -j route show table all > ip-route.json; "
    "ip -4 -d -N -j rule show > ip-rule.json; iptables-nft-save > iptables-save.txt; "
    "iptables-legacy-save > iptables-legacy-save.txt; ipset save > ipset-save.txt; "
    "nft list ruleset > nft-ruleset.txt; sysctl -a > sysctl.txt 2>/dev/null; "
    "conntrack -L > conntrack.txt; cat /etc/iproute2/rt_tables > rt-tables.txt; "
    "tc -j qdisc show > tc-qdisc.json; for d in $(ls /sys/class/net); do "
    "tc -d -j class show dev $d > tc-class-$d.txt; "
    "for p in $(tc qdisc show dev $d | cut -d' ' -f3) $(tc class show dev $d | cut -d' ' -f3) "
    "ffff:fff2 ffff:fff3; do tc -j filter show dev $d parent $p > tc-filter-$d-$p.json "
    "2>/dev/null; "
    "done; done"
)


@dataclass(slots=True)
class Dump:
    """The text of one dump and the name its errors carry (a path or a command)."""

    name: str
    text: str
    file: str


@dataclass(slots=True)
class Dumps:
    """Every dump a capture got, and the gaps (dumps it could not get, and why)."""

    origin: str  # "live" or the directory
    items: dict[str, Dump] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)
    classes: dict[str, Dump] = field(default_factory=dict)  # device -> tc class text
    filters: dict[tuple[str, str], Dump] = field(default_factory=dict)  # (dev, parent)

    def get(self, name: str) -> Dump | None:
        return self.items.get(name)

    def gap(self, name: str, why: str) -> None:
        src = CATALOGUE[name]
        self.gaps.append(f"{src.what} not captured: {why}")


# -- from a directory ------------------------------------------------------------------

def from_dir(path: str) -> Dumps:
    """The dumps in directory ``path`` (files named as in CATALOGUE); missing ones are gaps."""
    root = Path(path)
    if not root.is_dir():
        raise KptuiError(f"{path}: not a directory (capture --from reads a directory of "
                         "dumps; see the README for the commands that make them)")
    dumps = Dumps(origin=str(root))
    for name, src in CATALOGUE.items():
        file = root / src.file
        if not file.exists():
            if src.required:
                raise KptuiError(f"{file}: no such file: a capture needs at least "
                                 f"{CATALOGUE['link'].file} and {CATALOGUE['addr'].file} "
                                 f"(`{' '.join(src.argv)} > {src.file}`)")
            dumps.gap(name, f"{src.file} is not in {path}")
            continue
        dumps.items[name] = Dump(name, _read(file), str(file))
    for file in sorted(root.glob("tc-class-*.txt")):
        dev = file.name[len("tc-class-"):-len(".txt")]
        dumps.classes[dev] = Dump("tc_class", _read(file), str(file))
    for file in sorted(root.glob("tc-filter-*.json")):
        dev, _, parent = file.name[len("tc-filter-"):-len(".json")].rpartition("-")
        dumps.filters[(dev, parent)] = Dump("tc_filter", _read(file), str(file))
    return dumps


def _read(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as err:
        raise KptuiError(f"{file}: {err.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise KptuiError(f"{file}: byte offset {err.start}: not UTF-8 text (expected the "
                         "output of the command that makes this dump)") from None


# -- live --------------------------------------------------------------------------------

CAP_NET_ADMIN = 12


def has_net_admin() -> bool:
    """Root, or CAP_NET_ADMIN in this process's effective set (/proc/self/status)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    from kptui.engine.numbers import scan_uint

                    caps = scan_uint(line.split()[1], 16) or 0
                    return bool(caps >> CAP_NET_ADMIN & 1)
    except OSError:
        return False
    return False


def run(argv: tuple[str, ...] | list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a command; 127 when it is not installed."""
    if shutil.which(argv[0]) is None:
        return 127, "", f"{argv[0]}: not installed"
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          errors="surrogateescape")
    return proc.returncode, proc.stdout, proc.stderr


def live() -> Dumps:
    """Every dump, made on this box now (its current network namespace)."""
    if not has_net_admin():
        raise KptuiError("capture reads the iptables, conntrack and tc state of this box: it "
                         "needs root or CAP_NET_ADMIN (run it with sudo)")
    dumps = Dumps(origin="live")
    for name, src in CATALOGUE.items():
        if name == "sysctl":
            continue  # read from /proc/sys directly (kptui.capture.sysctls.read_live)
        argv = src.argv
        if name == "iptables" and shutil.which("iptables-nft-save") is None:
            argv = ("iptables-save",)
        if name == "conntrack" and shutil.which("conntrack") is None:
            proc = Path("/proc/net/nf_conntrack")
            if proc.exists():
                dumps.items[name] = Dump(name, proc.read_text("ascii", "replace"), str(proc))
            else:
                dumps.gap(name, "neither the conntrack tool nor /proc/net/nf_conntrack is "
                                "here")
            continue
        status, out, err = run(argv)
        command = " ".join(argv)
        if status == 127:
            if src.required:
                raise KptuiError(f"capture needs `{command}`: {argv[0]} is not installed")
            dumps.gap(name, f"{argv[0]} is not installed here")
            continue
        if status != 0:
            if src.required or name in ("route", "rule", "iptables"):
                raise KptuiError(f"`{command}` failed (exit {status}): "
                                 f"{err.strip() or 'no message'}")
            dumps.gap(name, f"`{command}` failed (exit {status}): "
                            f"{err.strip().splitlines()[0] if err.strip() else 'no message'}")
            continue
        dumps.items[name] = Dump(name, out, f"`{command}`")
    return dumps


def live_classes(dumps: Dumps, devices: list[str]) -> None:
    """The tc classes of each device, added to ``dumps`` (tc prints htb's as text)."""
    for dev in devices:
        status, out, _err = run((*CLASS_ARGV, dev))
        if status == 0:
            dumps.classes[dev] = Dump("tc_class", out, f"`{' '.join(CLASS_ARGV)} {dev}`")


def live_filters(dumps: Dumps, parents: dict[str, list[str]]) -> None:
    """The tc filters of each (device, parent), added to ``dumps``."""
    for dev, handles in parents.items():
        for parent in handles:
            argv = (*FILTER_ARGV, dev, "parent", parent)
            status, out, _err = run(argv)
            if status == 0:
                dumps.filters[(dev, parent)] = Dump("tc_filter", out, f"`{' '.join(argv)}`")


__all__ = ["CATALOGUE", "ONE_LINER", "Dump", "Dumps", "from_dir", "live", "live_classes",
           "live_filters"]
