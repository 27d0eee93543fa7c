"""Interfaces and addresses (`ip -d -j link`, `ip -j addr`) as a scenario declares them.

kptui models a device as a named thing with IPv4 addresses, an MTU and up/down; the
scenario's ``[[interfaces]]`` are such devices (veth ends in ``kptui verify``). So:

- veth and physical Ethernet devices are ``[[interfaces]]``;
- dummy and ifb devices are made by setup lines (`ip link add NAME type dummy|ifb`), as
  kptui models them (an ifb is where tc's mirred redirects to);
- every other kind (bridge, vlan, bond, vxlan, wireguard, macvlan, tun, ...) is kept as an
  ``[[interfaces]]`` device too, with its addresses and routes, and a note naming the kind
  and what is not modelled (no bridging, no tagging, no tunnel: kptui routes packets
  that arrive on it, or leave by it, as on any device); a bridge port or bond slave
  says whose it is;
- ``lo`` exists in every box (up, 127.0.0.1/8): its other addresses are setup lines;
- a device that is down gets `ip link set dev NAME down`, an MTU other than the kind's
  default `ip link set dev NAME mtu N`.

Addresses are IPv4 (``family`` inet) in the kernel's order (primaries first, as `ip addr`
lists them). What an address has that kptui does not model (a peer, a scope other than
the usual one, a finite lifetime, a label) is named in a note; its routes are captured
with the routing tables anyway, so a route the kernel did or did not make for it is
reconciled there (kptui.capture.routes). IPv6 is not modelled: a note counts what is
left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface

from kptui.capture.dumps import Dump
from kptui.capture.jsondump import Fields, entries
from kptui.engine.box import valid_ifname

SETUP_KINDS = ("dummy", "ifb")  # made by `ip link add NAME type KIND` as kptui models them
PLAIN_KINDS = ("veth", "")  # "" = no linkinfo: a physical device
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
LO_ADDRESS = "127.0.0.1/8"


@dataclass(slots=True)
class Iface:
    """One ``[[interfaces]]`` entry, with the comment lines written above it."""

    name: str
    addresses: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Links:
    interfaces: list[Iface] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)  # link lines, before the routes
    notes: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # every device the box will have
    made: list[str] = field(default_factory=list)  # the devices setup lines create
    kinds: dict[str, str] = field(default_factory=dict)  # device -> kind ("" physical)


def read(link: Dump, addr: Dump) -> Links:
    out = Links()
    addresses = _addresses(addr, out)
    down: list[str] = []
    for line, obj in entries(link, "the output of `ip -d -j link show`"):
        f = Fields(link, line, obj, "link")
        name = f.text("ifname")
        f = Fields(link, line, obj, f"link {name}")
        info = obj.get("linkinfo") or {}
        kind = info.get("info_kind", "") if isinstance(info, dict) else ""
        flags = f.strings("flags")
        up = "UP" in flags
        mtu = f.number("mtu", 1500)
        addrs = addresses.get(name, [])
        if f.text("link_type", "") == "loopback" or name == "lo":
            _loopback(name, up, mtu, addrs, out)
            continue
        if not valid_ifname(name) or name == "local":
            out.notes.append(f"link {name!r}: a name kptui cannot declare (\"local\" names a "
                             "locally generated packet): not captured, nor its addresses")
            continue
        out.devices.append(name)
        out.kinds[name] = kind
        if kind in SETUP_KINDS:
            out.made.append(name)
            out.setup.append(f"ip link add {name} type {kind}")
            if mtu != 1500:
                out.setup.append(f"ip link set dev {name} mtu {mtu}")
            if up:
                out.setup.append(f"ip link set dev {name} up")
            out.setup += [f"ip addr add {a} dev {name}" for a in addrs]
            continue
        iface = Iface(name, addrs)
        out.interfaces.append(iface)
        words = [f"kind {kind or 'physical (ether)'}"]
        if kind not in PLAIN_KINDS:
            words.append(_kind_note(name, kind, info, obj, out))
        master = obj.get("master")
        if isinstance(master, str):
            role = info.get("info_slave_kind", "slave") if isinstance(info, dict) else "slave"
            words.append(f"enslaved to {master}")
            out.notes.append(f"link {name}: a port of {master} ({role}): {master}'s "
                             "forwarding between its ports is not modelled; packets reach "
                             f"kptui's walk with iif {master}")
        if "NO-CARRIER" in flags and up:
            out.notes.append(f"link {name}: up but without carrier (NO-CARRIER): kptui "
                             "models the link as working (its routes are used, as with "
                             "ignore_routes_with_linkdown 0)")
        if mtu != 1500:
            out.setup.append(f"ip link set dev {name} mtu {mtu}")
        if not up:
            down.append(f"ip link set dev {name} down")
        qlen = obj.get("txqlen", 1000)
        if qlen != 1000:
            out.notes.append(f"link {name}: txqueuelen {qlen} is not modelled (1000 here): "
                             "tc's default queue limits follow it")
        iface.comments.append("; ".join(words) + f"; mtu {mtu}; {'up' if up else 'down'}")
    out.setup += down  # after every device exists (a down device keeps its local routes)
    return out


def _kind_note(name: str, kind: str, info: object, obj: dict, out: Links) -> str:
    detail = ""
    data = info.get("info_data") if isinstance(info, dict) else None
    if kind == "vlan" and isinstance(data, dict):
        detail = f" (vlan id {data.get('id')} on {obj.get('link', '?')})"
    out.notes.append(f"link {name}: kind {kind}{detail} is not modelled: kept as a plain "
                     f"device with its addresses and routes (no {kind} behaviour; kptui "
                     "verify builds it as a veth end)")
    return f"{kind} not modelled{detail}"


def _loopback(name: str, up: bool, mtu: int, addrs: list[str], out: Links) -> None:
    out.devices.append(name)
    if not up:
        out.notes.append("link lo is down on the captured box: unsupported yet (kptui's lo is "
                         "always up, with 127.0.0.1/8)")
    if mtu != 65536:
        out.setup.append(f"ip link set dev lo mtu {mtu}")
    if LO_ADDRESS not in addrs and up:
        out.setup.append(f"ip addr del {LO_ADDRESS} dev lo")
    out.setup += [f"ip addr add {a} dev lo" for a in addrs if a != LO_ADDRESS]


def _addresses(addr: Dump, out: Links) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    ipv6 = 0
    for line, obj in entries(addr, "the output of `ip -j addr show`"):
        f = Fields(addr, line, obj, "address")
        name = f.text("ifname")
        mine = found.setdefault(name, [])
        for info in f.objects("addr_info"):
            a = f.sub(info, f"{name}")
            family = a.text("family", "")
            if family != "inet":
                ipv6 += family == "inet6" and not a.text("local", "").startswith("fe80:")
                continue
            local = a.text("local")
            plen = a.number("prefixlen", hi=32)
            try:
                iface = IPv4Interface(f"{local}/{plen}")
            except ValueError:
                raise a.error("not an IPv4 address", local) from None
            text = str(iface)
            peer = info.get("address")
            if isinstance(peer, str) and peer != local:
                out.notes.append(f"address {text} on {name}: its peer {peer} is not modelled "
                                 f"(kept as {local}/32; the peer's route is in the tables)")
                text = f"{local}/32"
            scope = info.get("scope", "global")
            want = 254 if iface.ip.is_loopback else 0
            got = SCOPES.get(scope) if isinstance(scope, str) and scope in SCOPES else None
            if got is None:
                got = a.number("scope", hi=255)
            if got != want:
                out.notes.append(f"address {text} on {name}: scope {scope} is not modelled "
                                 "(kptui gives 127/8 scope host, others global)")
            lifetime = info.get("valid_life_time", 4294967295)
            if lifetime != 4294967295:
                out.notes.append(f"address {text} on {name}: valid_lft {lifetime}s is not "
                                 "modelled: kept as a permanent address")
            label = info.get("label", name)
            if label != name:
                out.notes.append(f"address {text} on {name}: label {label} is not kept "
                                 "(labels change nothing on the packet path)")
            mine.append(text)
    if ipv6:
        out.notes.append(f"IPv6 is not modelled: {ipv6} IPv6 address(es) (other than "
                         "link-local ones) and every IPv6 route are not captured")
    return found


__all__ = ["Iface", "Links", "read"]
