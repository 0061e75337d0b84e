"""`blubber` command line: a thin shell over blubber.api that maps errors to exit codes.

blubber CONFIG VARIANT [--policy FILE]     print the Dockerfile for VARIANT
blubber compile CONFIG VARIANT [--policy]  the same
blubber lint CONFIG [--policy FILE]        validate CONFIG and every variant (expansion + policy)

As upstream Blubber does, a policy applies only when one is named with --policy; deployer applies the
policies of the environment it ships to. The compiler is imported inside the commands, so `--help` and
`--version` start without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from blubber.errors import ExitCode, UserError

EXIT_CODES_HELP = f"""
\b
Exit codes:
  {ExitCode.OK:>3}  success
  {ExitCode.INTERNAL:>3}  internal error (a bug; printed with a traceback)
  {ExitCode.USAGE:>3}  bad command-line usage
  {ExitCode.CONFIG:>3}  bad config or policy file (unreadable, invalid YAML, unknown key, wrong type,
       invalid value, unknown variant, include/copies cycle)
  {ExitCode.POLICY:>3}  the config violates a policy enforcement
"""

_POLICY_OPTION = click.option(
    "--policy",
    "-p",
    "policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Ops policy file (defaults + enforcements) to apply. Default: none.",
)
# Kept so scripts written when the default policy applied still run; it is the default now.
_NO_POLICY_OPTION = click.option("--no-policy", is_flag=True, hidden=True)


def _run(action: Callable[[], None]) -> None:
    """Run `action`; a UserError is one message on stderr and its exit code, anything else a traceback + 1."""
    try:
        action()
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(int(e.exit_code))
    except Exception:
        import traceback  # only for a bug: not worth importing on every start

        traceback.print_exc()
        click.echo(
            "blubber: internal error (this is a bug, please report it with the traceback above)", err=True
        )
        sys.exit(int(ExitCode.INTERNAL))


def _policy(policy: Path | None, no_policy: bool) -> Path | None:
    return None if no_policy else policy


class _DefaultToCompile(click.Group):
    """`blubber CONFIG VARIANT` is short for `blubber compile CONFIG VARIANT`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        if first is not None and first not in self.commands:
            args = ["compile", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=_DefaultToCompile, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="deployer", prog_name="blubber")
def main() -> None:
    """Compile a Blubber config (version v4) into a multi-stage Dockerfile.

    Usage: blubber CONFIG VARIANT [--policy FILE]
    """


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@click.argument("variant")
@_POLICY_OPTION
@_NO_POLICY_OPTION
def compile(config: Path, variant: str, policy: Path | None, no_policy: bool) -> None:
    """Print the Dockerfile for VARIANT of CONFIG on stdout."""

    def action() -> None:
        from blubber import api

        loaded = api.load(config, policy=_policy(policy, no_policy))
        click.echo(api.compile_dockerfile(loaded, variant), nl=False)

    _run(action)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("config", type=click.Path(path_type=Path))
@_POLICY_OPTION
@_NO_POLICY_OPTION
def lint(config: Path, policy: Path | None, no_policy: bool) -> None:
    """Validate CONFIG: schema, rules, every variant's expansion and the policy."""

    def action() -> None:
        from blubber import api

        loaded = api.load(config, policy=_policy(policy, no_policy))
        failed: list[UserError] = []
        for name in sorted(loaded.variants):  # sorted: the same config always reports in the same order
            try:
                api.compile_dockerfile(loaded, name)
            except UserError as e:
                if str(e) not in {str(f) for f in failed}:  # a shared include's problem shows once
                    failed.append(e)
        if not failed:
            click.echo(f"{config}: ok ({len(loaded.variants)} variants)")
            return
        for e in failed[:-1]:
            click.echo(f"error: {e}", err=True)
        raise failed[-1]  # printed by _run, and its exit code is the command's

    _run(action)


if __name__ == "__main__":
    main()
