"""Entry point for `kptui` and `python -m kptui`."""

import sys

from kptui.cli import main as _cli_main


def main() -> None:
    sys.exit(_cli_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
