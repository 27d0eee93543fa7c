"""The sysctls kptui's engine reads, captured so the scenario's box has the same values.

Which ones: kptui.engine.box's (ip_forward and the other net.ipv4 globals it knows, the
per-device net.ipv4.conf keys for all, default and every device, the conntrack timeouts
and switches). Read from /proc/sys on a live box, from `sysctl -a` text otherwise.

Only values that differ from what the scenario's box would have anyway are written, in
an order that makes them hold in kptui and in a kernel alike: the globals and
ip_forward (which sets every device's forwarding) first, then conf.default (which the
devices that never wrote a key follow, devinet_copy_dflt_conf), conf.all, then each
device's own value where it is not the one it follows. A device a setup line makes
(dummy, ifb) gets its values as `sysctl -w` lines after it is made.

Sysctls the engine does not read are not captured; a few that change the packet path
(bridge netfilter, multipath hashing, routes with linkdown) are named in a note when
they are not at their default, the rest only counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kptui.capture.dumps import Dump
from kptui.engine.box import CONF_DEFAULTS, GLOBAL_SYSCTLS, sysctl_path
from kptui.engine.errors import ParseError
from kptui.engine.numbers import NumberError, parse_int

PROC = "/proc/sys"
# Not modelled, but they change what happens to a packet: (default, what it does).
NOTABLE = {
    "net.bridge.bridge-nf-call-iptables": (0, "bridged IPv4 frames traverse iptables"),
    "net.ipv4.fib_multipath_hash_policy": (0, "multipath routes hash on more than "
                                              "addresses"),
    "net.ipv4.conf.all.ignore_routes_with_linkdown": (0, "routes via links without "
                                                         "carrier are not used"),
    "net.netfilter.nf_conntrack_helper": (0, "conntrack helpers are assigned automatically"),
}


@dataclass(slots=True)
class Sysctls:
    values: list[tuple[str, int]] = field(default_factory=list)  # the [sysctl] table
    setup: list[str] = field(default_factory=list)  # for devices the setup lines make
    notes: list[str] = field(default_factory=list)


def wanted(devices: list[str]) -> list[str]:
    """Every sysctl name the engine reads, for these devices (sysctl(8) spelling)."""
    names = list(GLOBAL_SYSCTLS)
    for who in ["all", "default", *devices]:
        names += [f"net.ipv4.conf.{who.replace('.', '/')}.{key}" for key in CONF_DEFAULTS]
    return names + list(NOTABLE)


def read_live(devices: list[str]) -> dict[str, str]:
    """The values in /proc/sys now (a sysctl that does not exist here is left out)."""
    out: dict[str, str] = {}
    for name in wanted(devices):
        try:
            with open(os.path.join(PROC, *sysctl_path(name)), encoding="ascii") as fh:
                out[name] = fh.read().strip()
        except OSError:
            continue
    return out


def read_text(dump: Dump) -> dict[str, str]:
    """`sysctl -a` output: ``NAME = VALUE`` lines (VALUE may be empty)."""
    out: dict[str, str] = {}
    for number, raw in enumerate(dump.text.splitlines(), 1):
        if not raw.strip():
            continue
        name, eq, value = raw.partition(" = ")
        if not eq:
            name, eq, value = raw.partition(" =")
        if not eq or not name or " " in name.strip():
            raise ParseError("expected `NAME = VALUE`, as `sysctl -a` prints a sysctl",
                             file=dump.file, line=number, token=raw[:40])
        out[".".join(p.replace(".", "/") for p in sysctl_path(name.strip()))] = value.strip()
    return out


def plan(raw: dict[str, str], devices: list[str], made: list[str], *,
         file: str, total: int = 0, bridged: bool = False) -> Sysctls:
    """What to write so the box's sysctls are ``raw``'s."""
    out = Sysctls()
    values: dict[str, int] = {}
    for name in wanted(devices):
        if name in raw:
            try:
                values[name] = parse_int(raw[name].split()[0] if raw[name] else "", -2**31,
                                         2**31 - 1, what=name)
            except NumberError as exc:
                raise ParseError(f"sysctl {name}: {exc}", file=file, token=raw[name]) from None
    forward = values.get("net.ipv4.ip_forward", 0)
    for name, (default, _bounds) in GLOBAL_SYSCTLS.items():
        if name in values and values[name] != (0 if name == "net.ipv4.ip_forward" else default):
            out.values.append((name, values[name]))
    inherited: dict[str, int] = {}  # what a device that never wrote the key has
    made_inherit: dict[str, int] = {}  # what a device made after them starts with
    for key, default in CONF_DEFAULTS.items():
        base = forward if key == "forwarding" else default
        name = f"net.ipv4.conf.default.{key}"
        made_inherit[key] = values.get(name, base)
        inherited[key] = forward if key == "forwarding" else made_inherit[key]
        if name in values and values[name] != base:
            out.values.append((name, values[name]))
    for key, default in CONF_DEFAULTS.items():
        base = {"forwarding": forward, "accept_redirects": 0 if forward else 1}.get(key, default)
        name = f"net.ipv4.conf.all.{key}"
        if name in values and values[name] != base:
            out.values.append((name, values[name]))
    for dev in devices:
        for key in CONF_DEFAULTS:
            name = f"net.ipv4.conf.{dev.replace('.', '/')}.{key}"
            follows = made_inherit[key] if dev in made else inherited[key]
            if name in values and values[name] != follows:
                if dev in made:
                    out.setup.append(f"sysctl -w {name}={values[name]}")
                else:
                    out.values.append((name, values[name]))
    for name, (default, what) in NOTABLE.items():
        if name.startswith("net.bridge.") and not bridged:
            continue  # only bridged frames: a box without a bridge has none
        if name in raw and raw[name] != str(default):
            out.notes.append(f"sysctl {name} = {raw[name]} is not modelled ({what}; kptui "
                             f"behaves as with {default})")
    if total:
        out.notes.append(f"{total} other sysctl(s) in the dump are not read by kptui's "
                         "engine and not captured")
    return out


__all__ = ["Sysctls", "read_live", "read_text", "plan", "wanted"]
