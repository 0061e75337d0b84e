"""The `deployer` command line: a thin click front on the library.

Each command builds a typed config from its options, calls one library function and returns; the
group's `invoke` is the one edge where outcomes become exit codes:

- `UserError` (and every subclass in `deployer.errors`) → its message and hint on stderr, its exit code,
  no traceback;
- `KeyboardInterrupt` → "interrupted" on stderr, exit 130;
- anything else → the traceback, "internal error, please report", exit 1.

Adding a command: write `@main.command()` below in the section for your part, import your module
inside the function (so `deployer --help` stays fast and one broken module cannot break the others),
and raise `UserError` subclasses for anything the user can fix. Use `ci_option`, `report_options` and
`cli_state()` instead of redeclaring them.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from deployer.errors import ExitCode, UserError

__all__ = ["EXIT_CODE_HELP", "CliState", "ci_option", "cli_state", "main", "report_options"]

# Exit codes are part of the interface (CI scripts branch on them); `deployer --help` prints this table
# and a test checks that every `ExitCode` member has a line here.
EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error in deployer (printed with a traceback; please report it)",
    ExitCode.USAGE: "bad command-line usage",
    ExitCode.CONFIG: "bad blubber.yaml / deploy.yaml, or a file it names cannot be read",
    ExitCode.POLICY: "an ops policy enforcement was violated (also: `--ci` with uncommitted changes)",
    ExitCode.TEST_FAILED: "the test variant failed (nothing was pushed or deployed)",
    ExitCode.BUILD: "docker build failed",
    ExitCode.PUSH: "push to the registry failed",
    ExitCode.DEPLOY: "chart render or helm upgrade failed",
    ExitCode.ROLLOUT: "the rollout failed and the release was rolled back",
    ExitCode.SMOKE: "smoke checks failed after a healthy rollout",
    ExitCode.TIMEOUT: "an overall deadline passed",
    ExitCode.ENVIRONMENT: "a required tool or service is missing (run `deployer doctor`)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def _exit_code_epilog() -> str:
    # "\b" stops click from re-wrapping the table into one paragraph.
    lines = ["\b", "Exit codes:"]
    lines += [f"  {int(code):>3}  {text}" for code, text in sorted(EXIT_CODE_HELP.items())]
    return "\n".join(lines)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class CliState:
    """What the group-level options decide for every command.

    `ci` is True with `--ci`, with `CI=true` in the environment, or when stdout is not a terminal:
    plain output (one line per state change, no colour, no redraws) and never a prompt.
    `strict_ci` is True only when CI mode was asked for (`--ci` or `CI=true`), not merely implied by a
    pipe: it is what makes `ship` refuse a dirty work tree.
    """

    ci: bool
    strict_ci: bool
    color: bool


def cli_state() -> CliState:
    """The `CliState` of the running command (a default one outside a click context, e.g. in tests)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, CliState):
            return ctx.obj
        ctx = ctx.parent
    return _make_state(flag=False)


def _make_state(flag: bool) -> CliState:
    strict = flag or _truthy(os.environ.get("CI"))
    ci = strict or not sys.stdout.isatty()
    color = not ci and "NO_COLOR" not in os.environ
    return CliState(ci=ci, strict_ci=strict, color=color)


def ci_option(func: Any) -> Any:
    """`--ci` on a subcommand (same meaning as on the group, so both `deployer --ci ship` and
    `deployer ship --ci` work)."""
    return click.option(
        "--ci",
        "ci_flag",
        is_flag=True,
        default=False,
        help="CI mode: plain output, never prompt, refuse a dirty work tree (also CI=true).",
    )(func)


def report_options(func: Any) -> Any:
    """`--report FILE.json` and `--junit FILE.xml` for commands that produce step results."""
    func = click.option(
        "--junit",
        "junit_path",
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        default=None,
        help="Write the test-variant run and smoke checks as JUnit XML to FILE.",
        metavar="FILE.xml",
    )(func)
    func = click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        default=None,
        help="Write a JSON report (schema: deployer/schema/report.schema.json) to FILE.",
        metavar="FILE.json",
    )(func)
    return func


def config_option(func: Any) -> Any:
    """`--config deployer.yaml` (also $DEPLOYER_CONFIG)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="DEPLOYER_CONFIG",
        help="The deployer.yaml to read [default: the nearest one from the working directory up; "
        "none: only the built-in `local` environment].",
    )(func)


def target_options(func: Any) -> Any:
    """`--env`, `--kubeconfig` and `--config`: where a command acts, declared once for every command."""
    func = config_option(func)
    func = click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Use this kubeconfig instead of the environment's.",
    )(func)
    return click.option(
        "--env",
        "environment",
        default=None,
        envvar="DEPLOYER_ENV",
        help="The environment (deployer.yaml `environments:`) to act on [default: the file's `default`, "
        "else `local`, the local stack]. `deployer env list` shows them.",
    )(func)


def resolve_target(environment: str | None, kubeconfig: Path | None, config_path: Path | None) -> Any:
    """The one `deployer.target.Target` a command acts on (exit 2 for an unknown environment)."""
    from deployer.target import resolve
    from deployer.tools import registry

    target = resolve(environment, kubeconfig=kubeconfig, config=config_path)
    registry.use(target)  # its registry host is spoken to with the environment's TLS and credentials
    return target


def effective_state(ci_flag: bool) -> CliState:
    """The group's state, upgraded to CI mode when a subcommand's own `--ci` was given."""
    state = cli_state()
    if ci_flag and not state.strict_ci:
        state = CliState(ci=True, strict_ci=True, color=False)
    return state


def _fail(code: int) -> NoReturn:
    raise click.exceptions.Exit(code)


def _print_user_error(err: UserError) -> None:
    click.echo(f"error: {_redact(str(err))}", err=True)


def _redact(text: str) -> str:
    # Imported here, not at the top, so `deployer --help` does not pay for it.
    from deployer.reporting.redact import redact

    return redact(text)


class DeployerGroup(click.Group):
    """A click group whose `invoke` maps outcomes to exit codes (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own exits and usage errors keep click's handling (usage errors exit 2)
        except UserError as err:
            _print_user_error(err)
            _fail(int(err.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            _fail(int(ExitCode.INTERRUPTED))
        except BrokenPipeError:
            # the reader stopped reading (`deployer status | head`): end quietly, as a tool killed by
            # SIGPIPE would (128 + 13), with nothing more written to the closed pipe
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout until the process exits
            _fail(141)
        except Exception:
            click.echo(_redact(traceback.format_exc()).rstrip(), err=True)
            click.echo("internal error, please report this with the traceback above", err=True)
            _fail(int(ExitCode.INTERNAL))


@click.group(cls=DeployerGroup, epilog=_exit_code_epilog())
@click.option(
    "--ci",
    "ci_flag",
    is_flag=True,
    default=False,
    help="CI mode: plain output, one line per state change, never prompt (also CI=true or no TTY).",
)
@click.version_option(package_name="deployer")
@click.pass_context
def main(ctx: click.Context, ci_flag: bool) -> None:
    """Ship a service from its Blubber config to a healthy staging rollout."""
    ctx.obj = _make_state(ci_flag)


def entry() -> NoReturn:
    """The `deployer` console script: `main`, then an immediate exit with its code.

    Python's normal shutdown tears down every loaded module and object one at a time; with the Kubernetes
    client loaded that is 0.3-0.4 s of CPU after a ship has finished (measured: `bench/ship.py`). The
    commands close what they open themselves (locks, temporary directories, port-forwards, threads), so
    once output is flushed there is nothing left for that shutdown to do.
    """
    try:
        main.main(standalone_mode=True)
        code: Any = 0
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):  # what sys.exit("message") means
        click.echo(code, err=True)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`deployer status | head`): nothing more can be said
        code = code or 1
    # os._exit skips the atexit hooks, and one matters: the Kubernetes client's, which removes the CA,
    # certificate and private key it copied out of the kubeconfig into $TMPDIR (3 files per command).
    atexit._run_exitfuncs()
    os._exit(int(code or 0))


# --- ship workflow (issue 5/6) ------------------------------------------------------------------------


@main.command()
@click.argument("service")
@target_options
@click.option("--namespace", default=None, help="Override the namespace from deploy.yaml.")
@click.option("--release", default=None, help="Override the helm release name from deploy.yaml.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Overall deadline in seconds for the whole ship: builds, the test run, pushes, helm and the "
    "rollout watch are stopped when it comes (exit 18).",
)
@click.option("--skip-smoke", is_flag=True, default=False, help="Do not run smoke checks after the rollout.")
@ci_option
@report_options
def ship(
    service: str,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    release: str | None,
    timeout: float,
    skip_smoke: bool,
    ci_flag: bool,
    report_path: Path | None,
    junit_path: Path | None,
) -> None:
    """Test, build, push, deploy, watch and smoke-check SERVICE.

    SERVICE is a directory with .pipeline/blubber.yaml (and optionally .pipeline/deploy.yaml), or the name
    of a bundled example (e.g. node-hello).
    """
    from deployer import ship as ship_mod

    state = effective_state(ci_flag)
    target = resolve_target(environment, kubeconfig, config_path)
    config = ship_mod.ShipConfig(
        service=service,
        environment=target.name,
        kubeconfig=target.kubeconfig,
        target=target,
        namespace=namespace,
        release=release,
        timeout=timeout,
        smoke=not skip_smoke,
        ci=state.ci,
        strict_ci=state.strict_ci,
        color=state.color,
        report_path=report_path,
        junit_path=junit_path,
    )
    _fail(ship_mod.run(config))


@main.command()
@click.argument("service", required=False, type=click.Path(file_okay=False, path_type=Path))
@target_options
@click.option(
    "--namespace",
    default=None,
    help="Namespace to check RBAC in (default: SERVICE's namespace from deploy.yaml, else `default`).",
)
@ci_option
def doctor(
    service: Path | None,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    ci_flag: bool,
) -> None:
    """Check docker, registry login, helm, cluster reachability and RBAC; print a fix for each finding.

    Exits 0 when every check passes, 19 (environment) otherwise.
    """
    from deployer import doctor as doctor_mod

    target = resolve_target(environment, kubeconfig, config_path)
    if namespace is None and service is not None:
        from deployer.target.deploy import service_deploy

        namespace = service_deploy(target, service).namespace  # the environment's namespace rule
    state = effective_state(ci_flag)
    config = doctor_mod.DoctorConfig.of(
        target,
        namespace=namespace or "default",
        color=state.color,
    )
    _fail(doctor_mod.run(config))


# --- build stack: build, test, push (build-stack helper) ----------------------------------------------


def _tool_line(line: str) -> None:
    # Tool output (docker build, the test run) goes to stderr, so stdout carries only the result lines
    # a script may read (image id, digest). Lines arrive already redacted (deployer.tools.command).
    click.echo(line, err=True)


@main.command("build")
@click.argument("service")
@click.option("--variant", default="production", show_default=True, help="The Blubber variant to build.")
@click.option("--quiet", "-q", is_flag=True, default=False, help="Do not show docker's build output.")
@target_options
def build_command(
    service: str,
    variant: str,
    quiet: bool,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
) -> None:
    """Compile SERVICE's .pipeline/blubber.yaml and build VARIANT; print the image id and size.

    SERVICE is a directory with .pipeline/blubber.yaml, or the name of an example (examples/<name>).
    The image is named for the environment's registry (--env), as a ship would push it.
    """
    from deployer import build as build_mod

    target = resolve_target(environment, kubeconfig, config_path)
    # the built-in environment keeps build's own defaults ($DEPLOYER_REGISTRY, $DEPLOYER_NAMESPACE)
    result = build_mod.build(
        service,
        None,
        variant,
        progress=None if quiet else _tool_line,
        registry_host=None if target.builtin else target.registry.host,
        namespace=build_mod.NAMESPACE if target.builtin else target.registry.namespace,
    )
    click.echo(f"built {result.tag} ({variant}): {result.image_id}")
    click.echo(f"size: {result.size_mb:.1f} MB in {result.layers} layers; took {result.duration:.1f}s")


@main.command("test")
@click.argument("service")
@click.option(
    "--variant", default="test", show_default=True, help="The variant whose entrypoint runs the tests."
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    default=False,
    help="Do not show docker's build output (the tests' is shown).",
)
def test_command(service: str, variant: str, quiet: bool) -> None:
    """Build SERVICE's test variant and run its entrypoint, streaming the output.

    Exits 12 when the tests fail, with the last lines, the exit status and a command that reproduces
    the run; the test container is removed in every case, Ctrl-C included.
    """
    from deployer import build as build_mod

    result = build_mod.test(
        service, None, variant, progress=_tool_line, build_progress=None if quiet else True
    )
    click.echo(f"{result.service}: {variant} variant passed ({result.duration:.1f}s, image {result.image})")


@main.command("push")
@click.argument("service")
@click.option(
    "--namespace",
    "registry_namespace",
    default=None,
    help="Registry namespace: images go to <registry>/<namespace>/<service> [default: the environment's, "
    "or $DEPLOYER_NAMESPACE for the built-in one].",
)
@click.option("--quiet", "-q", is_flag=True, default=False, help="Do not show docker's output.")
@target_options
@ci_option
def push_command(
    service: str,
    registry_namespace: str | None,
    quiet: bool,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    ci_flag: bool,
) -> None:
    """Build SERVICE's production variant, tag it <UTC timestamp>-production and git-<sha>, push it to
    the registry's staging namespace and print the digest to deploy by.

    With --ci (or CI=true) a service directory with uncommitted changes is refused (exit 11).
    """
    from deployer import build as build_mod

    state = effective_state(ci_flag)
    target = resolve_target(environment, kubeconfig, config_path)
    default = build_mod.NAMESPACE if target.builtin else target.registry.namespace
    result = build_mod.push_service(
        service,
        ci=state.strict_ci,
        namespace=registry_namespace or default,
        registry_host=None if target.builtin else target.registry.host,
        progress=None if quiet else _tool_line,
    )
    click.echo(f"pushed {result.repository}: tags {', '.join(result.tags)}")
    click.echo(f"layers: {result.pushed_layers} uploaded, {result.existing_layers} already there")
    click.echo(f"digest: {result.digest}")
    click.echo(f"image: {result.reference}")


# --- release management: status, rollback, diff (ship helpers) ----------------------------------------


def release_target_options(func: Any) -> Any:
    """SERVICE plus the options that pick its release and cluster, as for `ship`."""
    func = click.option("--release", default=None, help="Override the helm release name from deploy.yaml.")(
        func
    )
    func = click.option("--namespace", default=None, help="Override the namespace from deploy.yaml.")(func)
    return click.argument("service")(target_options(func))


def _release_target(service: str, environment: str | None, kubeconfig: Path | None, config_path: Path | None,
                    namespace: str | None, release: str | None) -> Any:  # fmt: skip
    from deployer.release import ref

    tgt = ref.release_ref(
        service,
        where=resolve_target(environment, kubeconfig, config_path),
        namespace=namespace,
        release=release,
    )
    return tgt, ref.connect(tgt)


def _out(line: str) -> None:
    click.echo(_redact(line))


@main.command("status")
@release_target_options
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the status as one JSON document.")
def status_command(
    service: str,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    release: str | None,
    as_json: bool,
) -> None:
    """Show SERVICE's release: revision, helm status, the image digest that runs, ready pods, the last
    ship's result (from the helm history) and whether a ship holds the release lock.

    Exits 0 when the status was read (healthy or not; see the `pods:` line), 15 when there is no release.
    """
    import json

    from deployer.release.status import status

    tgt, cluster = _release_target(service, environment, kubeconfig, config_path, namespace, release)
    result = status(tgt, cluster)
    if as_json:
        _out(json.dumps(result.to_json(), indent=2, default=str))
        return
    for line in result.lines():
        _out(line)


@main.command("rollback")
@release_target_options
@click.option(
    "--revision",
    type=click.IntRange(min=1),
    default=None,
    help="Revision to return to [default: the newest earlier revision that was not itself rolled back].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds to watch the rollback's rollout [default: deploy.yaml timeouts.rollout].",
)
def rollback_command(
    service: str,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    release: str | None,
    revision: int | None,
    timeout: float | None,
) -> None:
    """Roll SERVICE's release back (helm rollback) and watch the rollout until it is healthy.

    Takes the release lock, so it never races a ship. Exits 0 when the old version runs healthy again,
    16 when it does not (with the diagnosis), 15 when helm fails or there is nothing to roll back to.
    """
    from deployer.release.rollback import rollback

    tgt, cluster = _release_target(service, environment, kubeconfig, config_path, namespace, release)
    result = rollback(
        tgt,
        cluster,
        revision=revision,
        timeout=timeout or float(tgt.deploy.timeouts.rollout),
        progress=_out,
        command=f"deployer rollback {service}",
    )
    for line in result.lines():
        _out(line)


@main.command("diff")
@release_target_options
@click.option(
    "--image",
    default=None,
    help="Render with this image (repository@sha256:…) [default: the image the live release runs].",
)
def diff_command(
    service: str,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    release: str | None,
    image: str | None,
) -> None:
    """Show what shipping SERVICE would change in the cluster: the chart rendered from its blubber.yaml
    and deploy.yaml now, against the live release's manifest, per resource (unified diffs).

    Prints "no changes" when there are none. Exits 0 either way (10 for a bad config, 15 for helm errors).
    """
    from deployer.release.diff import diff

    tgt, cluster = _release_target(service, environment, kubeconfig, config_path, namespace, release)
    for line in diff(tgt, cluster, image=image).lines():
        _out(line)


# --- promotion by digest (issue 11, item 6) -------------------------------------------------------------


@main.command("promote")
@click.argument("service")
@click.option("--from", "source", required=True, help="The environment whose tested digest is promoted.")
@click.option("--to", "destination", required=True, help="The environment it is copied to and deployed in.")
@config_option
@click.option("--release", default=None, help="Override the helm release name from deploy.yaml (both sides).")
@click.option(
    "--namespace", default=None, help="Where the release runs in the --from environment [default: its rule]."
)
@click.option(
    "--force", is_flag=True, default=False,
    help="Promote even a digest not deployed, healthy and smoke-passed in --from (the report says so).",
)  # fmt: skip
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
    help="Overall deadline in seconds: copy, helm, the rollout watch and smoke checks (exit 18).",
)  # fmt: skip
@ci_option
@report_options
def promote_command(
    service: str,
    source: str,
    destination: str,
    config_path: Path | None,
    release: str | None,
    namespace: str | None,
    force: bool,
    timeout: float,
    ci_flag: bool,
    report_path: Path | None,
    junit_path: Path | None,
) -> None:
    """Deploy in --to exactly the digest SERVICE runs, healthy and smoke-passed, in --from.

    The image and its chart are copied by digest into the --to registry (never rebuilt) and deployed
    with the --to environment's values, watched, rolled back on failure and smoke-checked. A digest that
    did not pass in --from is refused (exit 11) unless --force.
    """
    from deployer.release import promote_steps

    if source == destination:
        raise click.UsageError(
            f"--from and --to both name {source!r}: promote goes from one environment to another"
        )
    state = effective_state(ci_flag)
    # --to last: its registry's credentials are the ones the deploy's pull Secret is made from
    from_target = resolve_target(source, None, config_path)
    to_target = resolve_target(destination, None, config_path)
    config = promote_steps.PromoteConfig(
        service=service,
        source=from_target,
        target=to_target,
        release=release,
        namespace=namespace,
        force=force,
        timeout=timeout,
        ci=state.ci,
        color=state.color,
        report_path=report_path,
        junit_path=junit_path,
    )
    _fail(promote_steps.run(config))


# --- registry housekeeping: prune ---------------------------------------------------------------------


@main.command("prune")
@release_target_options
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Keep this many newest pushes of the image and of the chart (in-use ones are kept besides).",
)
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Keep pushes younger than this many seconds: a ship in flight has pushed but not deployed yet.",
)
@click.option("--dry-run", is_flag=True, default=False, help="Print what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the result as one JSON document.")
def prune_command(
    service: str,
    environment: str | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    namespace: str | None,
    release: str | None,
    keep: int,
    min_age: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete old pushes of SERVICE's image and chart from the registry, never a rollback target.

    Keeps the KEEP newest pushes of each, those younger than --min-age, and every image and chart version
    any revision in the helm history still references (SERVICE's release, and every other release on the
    cluster). Prints what is kept and why and what is deleted. Exits 19 when the cluster cannot be read
    (nothing is deleted then) or the registry fails (each deletion done so far is printed). Blob space is
    freed by the registry's garbage collector: `scripts/stack gc`.
    """
    import json

    from deployer.release import prune as prune_mod

    tgt, cluster = _release_target(service, environment, kubeconfig, config_path, namespace, release)
    # with --json, stdout carries only the document; progress goes to stderr
    progress = (lambda line: click.echo(_redact(line), err=True)) if as_json else _out
    result = prune_mod.prune(tgt, cluster, keep=keep, dry_run=dry_run, min_age=min_age, progress=progress)
    if as_json:
        _out(json.dumps(result.to_json(), indent=2))
        return
    for line in result.lines():
        _out(line)


# --- environments (issue 11) --------------------------------------------------------------------------


@main.group("env")
def env_group() -> None:
    """The environments deployer.yaml defines (and the built-in `local` one)."""


@env_group.command("list")
@config_option
def env_list(config_path: Path | None) -> None:
    """One line per environment: name, registry, cluster; the default one marked with `*`."""
    from deployer.target import environments

    envs = environments(config_path)
    for name in envs.names():
        env = envs.by_name[name]
        mark = "*" if name == envs.default else " "
        cluster = env.cluster.context or "(current-context)"
        _out(f"{mark} {name:<14} {env.registry.repository('<service>'):<48} {cluster}  [{env.origin}]")


@env_group.command("show")
@click.argument("name", required=False)
@config_option
@click.option("--json", "as_json", is_flag=True, default=False, help="Print it as one JSON document.")
def env_show(name: str | None, config_path: Path | None, as_json: bool) -> None:
    """The resolved environment NAME (default: the default one); credentials masked, never read."""
    import json

    import yaml

    from deployer.target import describe, resolve

    target = resolve(name, config=config_path)
    data = describe(target.environment, os.environ)
    data["cluster"]["kubeconfig"] = str(target.kubeconfig)  # as resolved: $KUBECONFIG for `local`
    # not through the redactor: it would mask the variable *names* after `password:`; describe() holds no
    # value to mask (it says only whether a variable is set)
    text = json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False)
    click.echo(text.rstrip())
