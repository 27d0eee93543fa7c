"""`--send 'WORDS'` in the commands: packets from the command line in place of a
scenario's, for kptui trace, kptui verify and the TUI (and its --no-tui text).

The words are kptui.engine.sendspec's (tcpdump's and `ip route get`'s); this module
only wires them to the commands: the option, its help, and the checks against the
options it cannot go with. The packets are written into the scenario's text, so a
session saved from such a run (trace --save, Ctrl+S in the TUI) replays them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from kptui.engine.errors import KptuiError

HELP = ("a packet to walk instead of the scenario's (may repeat: they are walked in "
        "order), in tcpdump's and `ip route get`'s words: PROTO SRC[:PORT] > DST[:PORT] "
        "(iif IFACE | local) [flags S|S.|R...] [type N|NAME] [code N] [id N] [mark M] "
        "[tos N] [ttl N] [length N] [seq N] [ack N] [uid N] [gid N] [df on|off] "
        "[time S] [options [TCP options]]; `local` without a source is an unbound "
        "socket's packet. E.g. --send 'tcp 198.51.100.7:40000 > 192.0.2.1:22 iif eth1 "
        "flags S'")


def add_send_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--send", action="append", default=[], metavar="'PACKET'", help=HELP)


def check(args: Any) -> None:
    """--send replaces the packets: not with --pcap, which does too."""
    if getattr(args, "send", None) and getattr(args, "pcap", None):
        raise KptuiError("--send and --pcap both replace the scenario's packets: give one")


def use_sends(scenario: Any, sends: Sequence[str]) -> None:
    """The --send packets in place of ``scenario``'s (nothing without --send)."""
    if sends:
        from kptui.engine.sendspec import apply_sends

        apply_sends(scenario, sends)


def text_with_sends(text: str, name: str, sends: Sequence[str]) -> str:
    """A scenario text with the --send packets in place of its own (``text`` itself
    without --send): what the TUI loads, so its sessions keep them."""
    if not sends:
        return text
    from kptui.engine.scenario import load_scenario
    from kptui.scenario_files import read_text_file

    scenario = load_scenario(text, file=name, read_file=read_text_file)
    use_sends(scenario, sends)
    return scenario.text


def verify_prepare(sends: Sequence[str], *, record: bool) -> Any:
    """For kptui verify --send: what puts the packets in each scenario (None without)."""
    if not sends:
        return None
    if record:
        raise KptuiError("--record saves the kernel's answers to the scenario's own packets: "
                         "leave it out with --send")

    def prepare(scenario: Any) -> None:
        use_sends(scenario, sends)

    return prepare


__all__ = ["HELP", "add_send_args", "check", "text_with_sends", "use_sends", "verify_prepare"]
