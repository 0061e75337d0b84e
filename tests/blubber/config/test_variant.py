"""Stage layout of one expanded variant (phases, users, scratch, insecurely)."""

from __future__ import annotations

from tests.blubber.helpers import stage_lines

HELLO = "variants:\n  hello: {base: debian:bullseye, copies: [local], entrypoint: [./hello.sh]}"

PRIVILEGED = [
    "FROM debian:bullseye AS hello",
    "USER 0",
    'ENV HOME="/root"',
    'ARG LIVES_AS="somebody"',
    "ARG LIVES_UID=65533",
    "ARG LIVES_GID=65533",
]


def test_defaults_only() -> None:
    lines = stage_lines(HELLO, "hello")
    assert lines[:6] == PRIVILEGED
    assert lines[7:11] == [
        'ARG RUNS_AS="runuser"',
        "ARG RUNS_UID=900",
        "ARG RUNS_GID=900",
        'RUN (getent group "$RUNS_GID" || groupadd -o -g "$RUNS_GID" -r "$RUNS_AS") && (getent passwd "$RUNS_UID" || '  # noqa: E501
        'useradd -l -o -m -d "/home/$RUNS_AS" -r -g "$RUNS_GID" -u "$RUNS_UID" "$RUNS_AS")',
    ]
    assert lines[11:] == [
        "USER $LIVES_UID",
        'ENV HOME="/home/somebody"',
        'WORKDIR "/srv/app"',
        'COPY --chown=$LIVES_UID:$LIVES_GID [".", "."]',
        "USER $RUNS_UID",
        'ENV HOME="/home/$RUNS_AS"',
        'ENTRYPOINT ["./hello.sh"]',
    ]


def test_insecurely_skips_the_runtime_user_switch() -> None:
    lines = stage_lines("lives: {uid: 1234}\nruns: {insecurely: true, uid: 4321}\n" + HELLO, "hello")
    assert "ARG LIVES_UID=1234" in lines and "ARG RUNS_UID=4321" in lines
    assert lines[-5:] == [
        "USER $LIVES_UID",
        'ENV HOME="/home/somebody"',
        'WORKDIR "/srv/app"',
        'COPY --chown=$LIVES_UID:$LIVES_GID [".", "."]',
        'ENTRYPOINT ["./hello.sh"]',
    ]


def test_runtime_directory_is_the_last_workdir() -> None:
    lines = stage_lines("runs: {in: /some/other/directory}\n" + HELLO, "hello")
    assert lines[-4:] == [
        "USER $RUNS_UID",
        'ENV HOME="/home/$RUNS_AS"',
        'WORKDIR "/some/other/directory"',
        'ENTRYPOINT ["./hello.sh"]',
    ]


def test_scratch_stage_has_no_users_or_chown() -> None:
    text = """
    variants:
      build: {base: golang:1.18, lives: {in: /src}, apt: {packages: [gcc]}}
      production:
        base: ~
        apt: {packages: [ignored]}
        runs: {environment: {IGNORED: x}}
        copies: [{from: build, source: /src/hello-world-go, destination: /hello-world}]
        entrypoint: [/hello-world]
    """
    assert stage_lines(text, "production") == [
        "FROM scratch AS production",
        'COPY --from=build ["/src/hello-world-go", "/hello-world"]',
        'ENTRYPOINT ["/hello-world"]',
    ]


def test_empty_scratch_variant() -> None:
    assert stage_lines("variants:\n  hello: {}", "hello") == ["FROM scratch AS hello"]
