"""Command line: argument parsing and subcommands; the work is done elsewhere.

Every user error ends as one line on stderr and exit status 2; no traceback
ever reaches a user (set KPTUI_DEBUG=1 to see one when hunting a bug).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from kptui import __version__, heap
from kptui.engine.errors import KptuiError
from kptui.scenario_files import read_text_file

DEMO = "demo.toml"


def read_scenario_text(path: str | None, *, now: bool = True) -> tuple[str, str]:
    """(text, name) of a scenario file, or of the built-in demo when ``path`` is None;
    with ``now``, a ``clock = "now"`` in it resolved to the time of this run."""
    if path is None:
        return resources.files("kptui.scenarios").joinpath(DEMO).read_text("utf-8"), DEMO
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise KptuiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KptuiError(f"{path}: is a directory, not a scenario file") from None
    except UnicodeDecodeError:
        raise KptuiError(f"{path}: not a text file (a scenario is TOML text)") from None
    except OSError as err:
        raise KptuiError(f"{path}: {err.strerror}") from None
    if now:
        from kptui.realclock import resolve_text

        text = resolve_text(text, path)
    return text, path


def load(path: str | None, *, now: bool = True):  # noqa: ANN201 - Scenario, lazily imported
    """The scenario at ``path``; ``now=False`` leaves a ``clock = "now"`` unresolved (kptui
    verify resolves it to the time it sends the packets)."""
    from kptui.engine.scenario import load_scenario

    text, name = read_scenario_text(path, now=now)
    return load_scenario(text, file=name, read_file=read_text_file)


def cmd_trace(args: argparse.Namespace) -> int:
    from kptui import report
    from kptui.engine.run import run_scenario

    if sum(map(bool, (args.demo, args.scenario, args.live))) > 1:
        raise KptuiError("give one of a scenario file, --demo or --live")
    if not args.demo and not args.scenario and not args.live:
        raise KptuiError("trace needs a scenario file (or --demo for the built-in one, or "
                         "--live for this box as it is now)")
    if args.live:
        from kptui.engine.scenario import load_scenario

        text, name = live_text()
        try:
            scenario = load_scenario(text, file=name)
        except KptuiError as err:
            raise KptuiError(f"{err} (--live: `kptui capture` writes the scenario whose "
                             "line this is)") from None
    else:
        scenario = load(None if args.demo else args.scenario)
    for note in scenario.notes:
        print(f"kptui: note: {note}", file=sys.stderr)
    from kptui import pcaprun, sendrun

    pcaprun.check_iif(args)
    sendrun.check(args)
    sendrun.use_sends(scenario, args.send)  # --send: its packets in place of the file's
    box = pcaprun.use_capture(scenario, args.pcap, args.iif)[0] if args.pcap else None
    if args.packet is not None and not 0 <= args.packet < len(scenario.packets):
        raise KptuiError(
            f"--packet {args.packet}: the scenario has {len(scenario.packets)} packet(s), "
            f"numbered from 0"
        )
    if args.save:
        if args.packet is not None:
            raise KptuiError("--save records the whole run: leave out --packet")
        pcaprun.refuse_save(scenario, "--save")
        from kptui.sessions.format import save
        from kptui.sessions.replay import record_run

        save(record_run(scenario, scenario.text, scenario.file), args.save)
    box = box or scenario.build_box()
    heap.keep()  # the box lives to the end: no collection scans it again
    results = list(run_scenario(scenario, only=args.packet, box=box))
    fmt = "json" if args.json else args.format
    if fmt == "trace":  # rule handles come from the box's ruleset, as the kernel's do
        sys.stdout.write(report.as_trace(results, ruleset=box.ruleset,
                                         profile=scenario.profile))
        return 0
    render = {"text": report.as_text, "json": report.as_json_lines}
    if args.pcap:  # each walk with its capture frame and time
        render = pcaprun.renderers(scenario.packets)
    sys.stdout.write(render[fmt](results))
    return 0


def live_text() -> tuple[str, str]:
    """(text, name) of this box captured now, in memory (`--live`); nothing is written."""
    from kptui.capture import capture_live

    captured = capture_live(check=False)  # the caller loads it: one load, not two
    if captured.error:
        raise KptuiError(f"--live: this box's scenario does not load in kptui: "
                         f"{captured.error}")
    if captured.notes:
        print(f"kptui: note: --live: {len(captured.notes)} thing(s) on this box are not "
              "modelled or not captured (`kptui capture` writes them in the scenario)",
              file=sys.stderr)
    return captured.text, "live"


def cmd_capture(args: argparse.Namespace) -> int:
    """`kptui capture [-o FILE] [--from DIR]`: this box (or the dumps in DIR) as a scenario."""
    from kptui.capture import capture_dir, capture_live, write

    captured = capture_dir(args.from_dir) if args.from_dir else capture_live()
    if args.output:
        write(args.output, captured.text)
    else:
        sys.stdout.write(captured.text)
    where = args.output or "the scenario"
    if captured.notes:
        print(f"kptui: capture: {len(captured.notes)} note(s) on what kptui does not model "
              f"or the dumps did not say, at the top of {where}", file=sys.stderr)
    if captured.error:
        print(f"kptui: capture: the scenario does not load in kptui (written anyway, to "
              f"correct by hand): {captured.error}", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from kptui import pcaprun
    from kptui.verify import verify_main

    pcaprun.check_iif(args)
    from kptui import sendrun

    sendrun.check(args)
    prepare = pcaprun.verify_prepare(args.pcap, args.iif, record=args.record) or \
        sendrun.verify_prepare(args.send, record=args.record)
    return verify_main(args.scenarios, record=args.record, prepare=prepare)


# Scenario texts up to this size are loaded before the screen opens, so a bad file gives
# its one-line error first; bigger ones (a kube-proxy dump) load in the app's worker,
# behind a progress screen, so the terminal never looks frozen.
SYNC_LOAD_LIMIT = 200_000


ROUTE_GET_KEYS = ("from", "iif", "oif", "mark", "tos")


# iproute2's /etc/iproute2/rt_dsfield (6.1): the names `ip route get ... tos` takes.
DSFIELD_NAMES = {
    "default": 0x00, "AF11": 0x28, "AF12": 0x30, "AF13": 0x38, "AF21": 0x48, "AF22": 0x50,
    "AF23": 0x58, "AF31": 0x68, "AF32": 0x70, "AF33": 0x78, "AF41": 0x88, "AF42": 0x90,
    "AF43": 0x98, "CS1": 0x20, "CS2": 0x40, "CS3": 0x60, "CS4": 0x80, "CS5": 0xA0,
    "CS6": 0xC0, "CS7": 0xE0, "EF": 0xB8,
}


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def route_get_mark(text: str) -> int:
    """`mark M` as ip-route(8) reads it: get_unsigned base 0 (strtoul: ``010`` is 8,
    ``08`` refused; checked with iproute2 6.1 in a netns)."""
    from kptui.engine.numbers import U32, NumberError, parse_uint

    try:
        return parse_uint(text, 0, U32, base=0, strtoul=True, what="mark")
    except NumberError:
        raise KptuiError(f'route get: argument "{_shown(text)}" is wrong: invalid mark value '
                         "(decimal, 0x hex or 0-prefixed octal, up to 0xffffffff)") from None


def route_get_tos(text: str) -> int:
    """`tos T` as ip-route(8) reads it: rtnl_dsfield_a2n, a name of rt_dsfield or strtoul
    base 16, so ``tos 10`` is 0x10 and ``010`` too (checked with iproute2 6.1: a rule
    `tos 0x10` matches `ip route get ... tos 10`, not `tos 16`)."""
    from kptui.engine.numbers import NumberError, parse_uint

    if text in DSFIELD_NAMES:
        return DSFIELD_NAMES[text]
    try:
        return parse_uint(text, 0, 0xFF, base=16, strtoul=True, what="tos")
    except NumberError:
        raise KptuiError(f'route get: argument "{_shown(text)}" is wrong: TOS value is invalid '
                         "(hex, like 10 or 0x10, up to ff, or a name like AF11)") from None


def packet_number(text: str) -> int:
    """``--packet N``: a decimal index (ASCII digits; ``010`` is 10, as before)."""
    from kptui.engine.numbers import NumberError, parse_uint

    try:
        return parse_uint(text, 0, 2**31 - 1, what="--packet")
    except NumberError as err:
        raise argparse.ArgumentTypeError(f"{err} (a packet number, from 0)") from None


def cmd_route(args: argparse.Namespace) -> int:
    """`kptui route get ADDR [from X] [iif I] [oif O] [mark M] [tos T] --scenario FILE`."""
    from ipaddress import IPv4Address

    words = list(args.words)
    if not words or words[0] != "get":
        raise KptuiError("route: only `route get ADDR [from X] [iif I] [oif O] [mark M] "
                         "[tos T]` is supported")
    words = words[1:]
    if words[:1] == ["to"]:
        words = words[1:]
    if not words:
        raise KptuiError("route get: an address is missing")
    opts: dict[str, str] = {}
    addr, rest = words[0], words[1:]
    while rest:
        key = rest[0]
        if key not in ROUTE_GET_KEYS:
            raise KptuiError(f"route get: unknown word {key!r} "
                             f"(known: {', '.join(ROUTE_GET_KEYS)})")
        if len(rest) < 2:
            raise KptuiError(f"route get: {key} needs a value")
        opts[key] = rest[1]
        rest = rest[2:]
    try:
        dst = IPv4Address(addr)
        src = IPv4Address(opts["from"]) if "from" in opts else None
    except ValueError as err:
        raise KptuiError(f"route get: {err}") from None
    mark = route_get_mark(opts.get("mark", "0"))
    tos = route_get_tos(opts.get("tos", "0"))
    box = load(args.scenario).build_box()
    from kptui.engine.routing import RouteError

    try:
        result, text = box.route_get(dst, src=src, iif=opts.get("iif", ""),
                                     oif=opts.get("oif", ""), mark=mark, tos=tos)
    except RouteError as err:
        print(str(err), file=sys.stderr)
        return 2
    sys.stdout.write(text)
    if args.explain:
        for line in result.explain:
            print(f"# {line}")
    return 0


def is_session_file(path: str | None) -> bool:
    """A .kpt file, or a file that starts like msgpack (a map), not like TOML text."""
    if path is None:
        return False
    if path.endswith(".kpt"):
        return True
    try:
        with open(path, "rb") as fh:
            first = fh.read(1)
    except OSError:
        return False
    return bool(first) and first[0] >= 0x80


def _on_terminal() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty()


def cmd_open(args: argparse.Namespace) -> int:
    """`kptui [SCENARIO]`: the full-screen debugger; the text trace when not on a terminal.
    `kptui SESSION.kpt`: the session reopened where it was saved, as it was on screen."""
    from kptui import pcaprun, report, sendrun
    from kptui.engine.run import run_scenario

    pcaprun.check_iif(args)
    sendrun.check(args)
    if args.live and args.scenario:
        raise KptuiError("give a scenario file or --live, not both")
    if is_session_file(args.scenario) and args.send:
        raise KptuiError("--send replaces a scenario's packets: give a scenario .toml, "
                         "not a session")
    if is_session_file(args.scenario):
        if args.pcap:
            raise KptuiError("--pcap replaces a scenario's packets: give a scenario .toml, "
                             "not a session")
        return open_session(args.scenario, headless=args.no_tui or not _on_terminal())
    text, name = live_text() if args.live else read_scenario_text(args.scenario)
    text = sendrun.text_with_sends(text, name, args.send)  # --send: in the text, for sessions
    if args.no_tui or not (sys.stdout.isatty() and sys.stdin.isatty()):
        from kptui.engine.scenario import load_scenario

        scenario = load_scenario(text, file=name, read_file=read_text_file)
        if args.pcap:
            box = pcaprun.use_capture(scenario, args.pcap, args.iif)[0]
            sys.stdout.write(pcaprun.as_text(run_scenario(scenario, box=box),
                                             scenario.packets))
            return 0
        box = scenario.build_box()
        heap.keep()  # the box lives to the end: no collection scans it again
        sys.stdout.write(report.as_text(run_scenario(scenario, box=box)))
        return 0
    from kptui.app import KptApp

    # A small scenario loads before the screen opens; a big one, or one whose rules are in
    # a file of their own, behind the loading screen.
    if (len(text) <= SYNC_LOAD_LIMIT and "iptables_file" not in text) or args.pcap:
        from kptui.engine.debugger import Debugger
        from kptui.engine.scenario import load_scenario

        scenario = load_scenario(text, file=name, read_file=read_text_file)
        notes = pcaprun.use_capture(scenario, args.pcap, args.iif)[1] if args.pcap else []
        app = KptApp(scenario, debugger=Debugger.for_scenario(scenario),
                     name=scenario.name or name, notice="\n".join(notes))
    else:
        app = KptApp(text=text, name=name, read_file=read_text_file)
    result = app.run()
    if isinstance(result, BaseException):
        raise result
    return app.return_code or 0


def _run_app(app: object) -> int:
    result = app.run()  # type: ignore[attr-defined]
    if isinstance(result, BaseException):
        raise result
    return app.return_code or 0  # type: ignore[attr-defined]


def open_session(path: str, *, headless: bool) -> int:
    from kptui.sessions.format import load as load_session
    from kptui.sessions.replay import as_text, replay, walks

    session = load_session(path)
    done = replay(session, file=path)
    if headless:
        sys.stdout.write(as_text(walks(done.debugger)))
        return _diverged(path, done.divergence)
    from kptui.app import KptApp

    notice = f"the replay diverges: {done.divergence}" if done.divergence else ""
    app = KptApp(done.scenario, debugger=done.debugger,
                 name=done.scenario.name or session.scenario_file, view=session.view,
                 session_path=path, notice=notice)
    return _run_app(app)


def _diverged(path: str, divergence: str) -> int:
    if divergence:
        print(f"kptui: {path}: the replay diverges from the recording: {divergence}",
              file=sys.stderr)
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """`kptui replay SESSION`: the replay screen, or with --headless the trace, checked."""
    from kptui.sessions import replay as rp
    from kptui.sessions.format import load as load_session
    from kptui.sessions.format import write_atomic
    from kptui.sessions.pcap import write as write_pcap

    session = load_session(args.session)
    done = rp.replay(session, file=args.session)
    headless = args.headless or args.pcap or not _on_terminal()
    if not headless:
        from kptui.app import KptApp

        app = KptApp(done.scenario, debugger=done.debugger,
                     name=done.scenario.name or session.scenario_file,
                     replay=list(done.debugger.events), notice=done.divergence,
                     session_path=args.session)
        return _run_app(app)
    if args.pcap:
        write_atomic(args.pcap, write_pcap(rp.pcap_records(done.debugger)))
    if args.headless or not args.pcap:
        fmt = "json" if args.json else args.format
        walked = rp.walks(done.debugger)
        if fmt == "trace":
            sys.stdout.write(rp.as_trace(walked, ruleset=done.debugger.box.ruleset,
                                         profile=done.debugger.profile))
        else:
            render = {"text": rp.as_text, "json": rp.as_json_lines}
            sys.stdout.write(render[fmt](walked))
    return _diverged(args.session, done.divergence)


def add_pcap_args(parser: argparse.ArgumentParser) -> None:
    """--pcap FILE [--iif IFACE]: a capture's IPv4 packets in place of the scenario's."""
    parser.add_argument("--pcap", metavar="FILE",
                        help="walk the IPv4 packets of this pcap/pcapng capture (tcpdump -w) "
                             "instead of the scenario's, in order, at the capture's times")
    parser.add_argument("--iif", action="append", default=[], metavar="IFACE",
                        help="where the --pcap packets arrive: a box interface, or local for "
                             "the box's own; CAPTURED=IFACE for the frames the capture says "
                             "arrived on CAPTURED (a pcapng interface name, an SLL2 "
                             "interface index); may repeat. Default: the capture's pcapng "
                             "interface names, or the box's only interface")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    from kptui import sendrun

    top = argparse.ArgumentParser(
        prog="kptui",
        description="A stepping debugger for the Linux packet path.",
        epilog="subcommands: trace, replay, verify, route, capture (run `kptui trace "
               "--help`)",
    )
    top.add_argument("--version", action="version", version=f"kptui {__version__}")
    top.add_argument("scenario", nargs="?",
                     help="scenario .toml (default: the built-in demo), or a saved session "
                          ".kpt to reopen where it was saved")
    top.add_argument("--no-tui", action="store_true",
                     help="print the trace as text instead of opening the full-screen "
                          "debugger (the default when stdout is not a terminal)")
    add_pcap_args(top)
    sendrun.add_send_args(top)
    top.add_argument("--live", action="store_true",
                     help="open the debugger on this box as it is now (captured in memory "
                          "as `kptui capture` does; needs root or CAP_NET_ADMIN)")
    top.set_defaults(func=cmd_open)

    trace = argparse.ArgumentParser(
        prog="kptui trace",
        description="Walk a scenario's packets and print what the kernel does with each.",
    )
    trace.add_argument("scenario", nargs="?", help="scenario .toml file")
    trace.add_argument("--demo", action="store_true", help="use the built-in demo scenario")
    trace.add_argument("--live", action="store_true",
                       help="this box as it is now (captured in memory, nothing written; "
                            "needs root or CAP_NET_ADMIN): with --send, what would it do "
                            "with this packet")
    trace.add_argument("--json", action="store_true", help="same as --format json")
    trace.add_argument("--format", choices=("text", "json", "trace"), default="text",
                       help="text for people (default), json (one object per packet), "
                            "or trace (TRACE: lines)")
    trace.add_argument("--packet", type=packet_number, metavar="N", help="only packet N (from 0)")
    add_pcap_args(trace)
    sendrun.add_send_args(trace)
    trace.add_argument("--save", metavar="FILE.kpt",
                       help="also record the run (every packet to its fate) as a session "
                            "file, for `kptui replay` or `kptui FILE.kpt`")
    trace.set_defaults(func=cmd_trace)

    replay = argparse.ArgumentParser(
        prog="kptui replay",
        description="Replay a saved session: a timeline to move along both ways, or with "
                    "--headless the trace of the re-run journal. Exit 0 when the events "
                    "match the recording, 1 when they diverge (the first differing event "
                    "is shown), 2 when the file cannot be used.",
    )
    replay.add_argument("session", metavar="SESSION.kpt")
    replay.add_argument("--headless", action="store_true",
                        help="print the trace instead of opening the replay screen (the "
                             "default when stdout is not a terminal)")
    replay.add_argument("--json", action="store_true", help="same as --format json")
    replay.add_argument("--format", choices=("text", "json", "trace"), default="text",
                        help="text for people (default), json (one object per packet), "
                             "or trace (TRACE: lines)")
    replay.add_argument("--pcap", metavar="FILE",
                        help="write the walked packets (as they arrive and after each stage "
                             "that changed them) to a pcap file, LINKTYPE_RAW")
    replay.set_defaults(func=cmd_replay)

    verify = argparse.ArgumentParser(
        prog="kptui verify",
        description="Run scenarios on this machine's real kernel (in network namespaces; "
                    "needs root) and compare its answers with kptui's. Exit 1 on any "
                    "disagreement.",
    )
    verify.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    verify.add_argument("--record", action="store_true",
                        help="write the kernel's answers to NAME.kernel.jsonl beside each")
    add_pcap_args(verify)
    sendrun.add_send_args(verify)
    verify.set_defaults(func=cmd_verify)

    route = argparse.ArgumentParser(
        prog="kptui route",
        description="Ask the scenario's box which route a packet takes, and print the "
                    "answer as `ip route get` prints it: route get ADDR [from X] [iif I] "
                    "[oif O] [mark M] [tos T]. Without iif it is a local packet's output "
                    "lookup; with iif the input lookup of a packet from X arriving there.",
    )
    route.add_argument("words", nargs="*", metavar="get ADDR ...")
    route.add_argument("--scenario", metavar="FILE",
                       help="scenario .toml (default: the built-in demo)")
    route.add_argument("--explain", action="store_true",
                       help="also print the RPDB rules tried and why, as # lines")
    route.set_defaults(func=cmd_route)
    capture = argparse.ArgumentParser(
        prog="kptui capture",
        description="Write a scenario of this box as it is now (interfaces, addresses, "
                    "routes and rules, iptables, ipsets, tc, the sysctls kptui reads, the "
                    "conntrack table; needs root or CAP_NET_ADMIN), or of another box from "
                    "the dumps in a directory (--from; the README gives the commands to "
                    "run there). What kptui does not model is named at the top of the "
                    "file. Exit 2 on a dump kptui cannot read, 1 when the scenario does "
                    "not load in kptui (it is written anyway).",
    )
    capture.add_argument("-o", "--output", metavar="FILE",
                         help="write the scenario here (atomically) instead of to stdout")
    capture.add_argument("--from", dest="from_dir", metavar="DIR",
                         help="read the dumps in DIR instead of this box")
    capture.set_defaults(func=cmd_capture)
    return {"": top, "trace": trace, "verify": verify, "route": route, "replay": replay,
            "capture": capture}


def main(argv: list[str]) -> int:
    parsers = build_parsers()
    if argv and argv[0] in parsers:
        args = parsers[argv[0]].parse_args(argv[1:])
    else:
        args = parsers[""].parse_args(argv)
    try:
        return args.func(args)
    except KptuiError as err:
        print(f"kptui: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence: no tracebacks
        if os.environ.get("KPTUI_DEBUG"):
            raise
        print(f"kptui: internal error: {type(err).__name__}: {err} "
              "(please report it; KPTUI_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3
