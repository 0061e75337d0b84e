"""`blubber` command line: a thin shell over blubber.api that maps errors to exit codes.

blubber CONFIG VARIANT [--policy FILE]     print the Dockerfile for VARIANT
blubber compile CONFIG VARIANT [--policy]  the same
blubber lint CONFIG [--policy FILE]        validate CONFIG and every variant (expansion + policy)

As upstream Blubber does, a policy applies only when one is named with --policy; deployer applies the
policies of the environment it ships to. The parser is the standard library's argparse, not click: importing
click cost about 45 ms of CPU in every `blubber` process (issue 14), for three commands. The compiler is
imported inside the commands, so `--help` and `--version` start without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from blubber.errors import ExitCode, UserError

EXIT_CODES_HELP = f"""\
Exit codes:
  {ExitCode.OK:>3}  success
  {ExitCode.INTERNAL:>3}  internal error (a bug; printed with a traceback)
  {ExitCode.USAGE:>3}  bad command-line usage
  {ExitCode.CONFIG:>3}  bad config or policy file (unreadable, invalid YAML, unknown key, wrong type,
       invalid value, unknown variant, include/copies cycle)
  {ExitCode.POLICY:>3}  the config violates a policy enforcement
"""

COMMANDS = ("compile", "lint")


def _run(action: Callable[[], None]) -> None:
    """Run `action`; a UserError is one message on stderr and its exit code, anything else a traceback + 1."""
    try:
        action()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(int(e.exit_code))
    except Exception:
        import traceback  # only for a bug: not worth importing on every start

        traceback.print_exc()
        print(
            "blubber: internal error (this is a bug, please report it with the traceback above)",
            file=sys.stderr,
        )
        sys.exit(int(ExitCode.INTERNAL))


def _compile(config: Path, variant: str, policy: Path | None) -> None:
    from blubber import api

    loaded = api.load(config, policy=policy)
    sys.stdout.write(api.compile_dockerfile(loaded, variant))


def _lint(config: Path, policy: Path | None) -> None:
    from blubber import api

    loaded = api.load(config, policy=policy)
    failed: list[UserError] = []
    for name in sorted(loaded.variants):  # sorted: the same config always reports in the same order
        try:
            api.compile_dockerfile(loaded, name)
        except UserError as e:
            if str(e) not in {str(f) for f in failed}:  # a shared include's problem shows once
                failed.append(e)
    if not failed:
        print(f"{config}: ok ({len(loaded.variants)} variants)")
        return
    for e in failed[:-1]:
        print(f"error: {e}", file=sys.stderr)
    raise failed[-1]  # printed by _run, and its exit code is the command's


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() reads it (COLUMNS, then the terminal, else 80)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout with the epilog kept as written and `Usage:` capitalised, as before.

    The width is passed in: argparse otherwise imports shutil (with zlib, bz2 and lzma) for every formatter
    it makes, also the ones add_argument makes to check a metavar: 4-6 ms of every `blubber` process.
    """

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )

    def add_usage(self, usage, actions, groups, prefix=None) -> None:  # type: ignore[no-untyped-def]
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)


class _Version(argparse.Action):
    """`--version` reads the installed distribution's metadata only when asked."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        from importlib.metadata import version

        print(f"blubber, version {version('deployer')}")
        parser.exit()


def _policy_file(value: str) -> Path:
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a directory")
    return path


def _parser() -> argparse.ArgumentParser:
    common = {"formatter_class": _Formatter, "epilog": EXIT_CODES_HELP}
    parser = argparse.ArgumentParser(
        prog="blubber",
        description="Compile a Blubber config (version v4) into a multi-stage Dockerfile.\n\n"
        "Usage: blubber CONFIG VARIANT [--policy FILE]",
        **common,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    help_texts = {
        "compile": "print the Dockerfile for VARIANT of CONFIG on stdout",
        "lint": "validate CONFIG: schema, rules, every variant's expansion and the policy",
    }
    for name in COMMANDS:
        sub = commands.add_parser(name, help=help_texts[name], description=help_texts[name], **common)
        sub.add_argument("config", metavar="CONFIG", type=Path)
        if name == "compile":
            sub.add_argument("variant", metavar="VARIANT")
        sub.add_argument(
            "--policy",
            "-p",
            metavar="FILE",
            type=_policy_file,
            default=None,
            help="ops policy file (defaults + enforcements) to apply; default: none",
        )
        # Kept so scripts written when the default policy applied still run; it is the default now.
        sub.add_argument("--no-policy", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `blubber` console script; `argv` defaults to the process's arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    # `blubber CONFIG VARIANT` is short for `blubber compile CONFIG VARIANT`.
    first = next((a for a in args if not a.startswith("-")), None)
    if first is not None and first not in COMMANDS:
        args = ["compile", *args]
    ns = _parser().parse_args(args)
    policy = None if ns.no_policy else ns.policy
    if ns.command == "compile":
        _run(lambda: _compile(ns.config, ns.variant, policy))
    else:
        _run(lambda: _lint(ns.config, policy))


if __name__ == "__main__":
    main()
