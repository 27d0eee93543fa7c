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

from kptui import __version__
from kptui.engine.errors import KptuiError

DEMO = "demo.toml"


def read_scenario_text(path: str | None) -> tuple[str, str]:
    """(text, name) of a scenario file, or of the built-in demo when ``path`` is None."""
    if path is None:
        return resources.files("kptui.scenarios").joinpath(DEMO).read_text("utf-8"), DEMO
    try:
        return Path(path).read_text("utf-8"), path
    except FileNotFoundError:
        raise KptuiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KptuiError(f"{path}: is a directory, not a scenario file") from None
    except UnicodeDecodeError:
        raise KptuiError(f"{path}: not a text file (a scenario is TOML text)") from None
    except OSError as err:
        raise KptuiError(f"{path}: {err.strerror}") from None


def load(path: str | None):  # noqa: ANN201 - Scenario, imported lazily for start-up time
    from kptui.engine.scenario import load_scenario

    text, name = read_scenario_text(path)
    return load_scenario(text, file=name)


def cmd_trace(args: argparse.Namespace) -> int:
    from kptui import report
    from kptui.engine.run import run_scenario

    if args.demo and args.scenario:
        raise KptuiError("give a scenario file or --demo, not both")
    if not args.demo and not args.scenario:
        raise KptuiError("trace needs a scenario file (or --demo for the built-in one)")
    scenario = load(None if args.demo else args.scenario)
    if args.packet is not None and not 0 <= args.packet < len(scenario.packets):
        raise KptuiError(
            f"--packet {args.packet}: the scenario has {len(scenario.packets)} packet(s), "
            f"numbered from 0"
        )
    results = list(run_scenario(scenario, only=args.packet))
    fmt = "json" if args.json else args.format
    render = {"text": report.as_text, "json": report.as_json_lines, "trace": report.as_trace}
    sys.stdout.write(render[fmt](results))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from kptui.verify import verify_main

    return verify_main(args.scenarios, record=args.record)


def cmd_open(args: argparse.Namespace) -> int:
    """`kptui [SCENARIO]`: until the full-screen debugger lands, print the trace."""
    from kptui import report
    from kptui.engine.run import run_scenario

    scenario = load(args.scenario)
    sys.stdout.write(report.as_text(run_scenario(scenario)))
    return 0


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    top = argparse.ArgumentParser(
        prog="kptui",
        description="A stepping debugger for the Linux packet path.",
        epilog="subcommands: trace, verify (run `kptui trace --help`)",
    )
    top.add_argument("--version", action="version", version=f"kptui {__version__}")
    top.add_argument("scenario", nargs="?", help="scenario .toml (default: the built-in demo)")
    top.set_defaults(func=cmd_open)

    trace = argparse.ArgumentParser(
        prog="kptui trace",
        description="Walk a scenario's packets and print what the kernel does with each.",
    )
    trace.add_argument("scenario", nargs="?", help="scenario .toml file")
    trace.add_argument("--demo", action="store_true", help="use the built-in demo scenario")
    trace.add_argument("--json", action="store_true", help="same as --format json")
    trace.add_argument("--format", choices=("text", "json", "trace"), default="text",
                       help="text for people (default), json (one object per packet), "
                            "or trace (TRACE: lines)")
    trace.add_argument("--packet", type=int, metavar="N", help="only packet N (from 0)")
    trace.set_defaults(func=cmd_trace)

    verify = argparse.ArgumentParser(
        prog="kptui verify",
        description="Run scenarios on this machine's real kernel (in network namespaces; "
                    "needs root) and compare its answers with kptui's. Exit 1 on any "
                    "disagreement.",
    )
    verify.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    verify.add_argument("--record", action="store_true",
                        help="write the kernel's answers to NAME.kernel.jsonl beside each")
    verify.set_defaults(func=cmd_verify)
    return {"": top, "trace": trace, "verify": verify}


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
