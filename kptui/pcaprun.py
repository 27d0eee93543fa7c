"""`--pcap FILE [--iif IFACE]` in the commands: a capture's packets in place of a
scenario's, for kptui trace, the TUI (and its --no-tui text) and kptui verify.

What kptui.pcapin notes about the capture (frames skipped by kind, checksums put
right, packets it cannot take, where the packets arrive) is printed on stderr before
the walks, one `kptui: note: ...` line each. The walks are the scenario's: packet N is
the N-th IPv4 packet of the capture; the text output heads each with its frame number
and time, and --json adds one key to each object (additive to DESIGN.md's shape):

    "capture": {"frame": 7, "time": 0.004512, "notes": ["udp.checksum at byte 80 ..."]}

``frame`` is the capture's frame number (from 1, as tcpdump -# and Wireshark count),
``time`` the packet's time on the box's clock (seconds after the first packet walked),
``notes`` (when any) what was put right in its bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from kptui.engine.errors import KptuiError


def use_capture(scenario: Any, path: str, iif: Sequence[str], *,
                box: Any = None) -> tuple[Any, list[str]]:
    """Replace ``scenario``'s packets with the capture's; print its notes on stderr.
    Returns the box the interfaces were read from (fresh: nothing walked in it yet) and
    the notes (the TUI shows them too)."""
    from kptui.pcapin import load_capture

    if box is None:
        box = scenario.build_box()
    loaded = load_capture(path, iif=iif, interfaces=box.interfaces)
    for note in loaded.notes:
        print(f"kptui: note: {note}", file=sys.stderr)
    scenario.packets = loaded.packets
    scenario.packets_from = f"--pcap {path}"
    return box, loaded.notes


def check_iif(args: Any) -> None:
    """--iif only means something with --pcap; --pcap and --send both replace the
    scenario's packets."""
    if getattr(args, "iif", None) and not getattr(args, "pcap", None):
        raise KptuiError("--iif names where the packets of --pcap FILE arrive: give --pcap")
    if getattr(args, "pcap", None) and getattr(args, "send", None):
        raise KptuiError("--pcap and --send both replace the scenario's packets: give one")


def refuse_save(scenario: Any, what: str) -> None:
    """A session keeps the scenario text, which does not hold a capture's packets."""
    source = getattr(scenario, "packets_from", "")
    if source:
        raise KptuiError(f"unsupported yet: {what} of a run whose packets come from {source} "
                         "(a session keeps the scenario text, which does not hold them)")


def as_text(results: Iterable[Any], packets: Sequence[Any]) -> str:
    """kptui.report.as_text with each walk headed by its capture frame and time."""
    from kptui import report

    blocks = []
    for result in results:
        spec = packets[result.index]
        blocks.append(f"frame {spec.frame} at +{spec.time:.6f} s\n" + report.as_text([result]))
    return "\n".join(blocks)


def as_json_lines(results: Iterable[Any], packets: Sequence[Any]) -> str:
    """kptui.report.as_json_lines with each object's ``capture`` (see the module doc)."""
    lines = []
    for result in results:
        row = result.to_json()
        row = {"packet": row.pop("packet"),
               "capture": packets[result.index].capture_json(), **row}
        lines.append(json.dumps(row) + "\n")
    return "".join(lines)


def renderers(packets: Sequence[Any]) -> dict[str, Any]:
    """The text and json renderers of kptui trace for a capture's packets."""
    return {"text": lambda results: as_text(results, packets),
            "json": lambda results: as_json_lines(results, packets)}


def verify_prepare(path: str | None, iif: Sequence[str], *, record: bool) -> Any:
    """For kptui verify --pcap: what puts the capture's packets in each scenario (None
    without --pcap). The kernel is sent each packet's bytes at its time, as a scenario's."""
    if not path:
        return None
    if record:
        raise KptuiError("--record saves the kernel's answers to the scenario's own packets: "
                         "leave it out with --pcap")

    def prepare(scenario: Any) -> None:
        from kptui.verify.kernel import FIRST_IDENT, SENTINEL_BASE

        use_capture(scenario, path, iif)
        most = SENTINEL_BASE - FIRST_IDENT  # verify tells packets apart by their IP ID
        if len(scenario.packets) > most:
            raise KptuiError(f"{path}: {len(scenario.packets)} packets; kptui verify sends "
                             f"at most {most} (tcpdump -r FILE -c N -w PART takes the first N)")

    return prepare
