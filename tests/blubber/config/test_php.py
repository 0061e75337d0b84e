from __future__ import annotations

from blubber.config.artifacts import Artifact
from blubber.config.php import Php
from blubber.dockerfile.phases import Phase
from tests.blubber.helpers import config, phase_lines

REQS = (Artifact("local", "composer.json"),)
COPY = 'COPY --chown=$LIVES_UID:$LIVES_GID ["composer.json", "./"]'


def test_parse_and_instructions() -> None:
    php = config("php: {requirements: [composer.json], production: true}").common.php
    assert php == Php(REQS, True)
    assert phase_lines(php, Phase.PRE_INSTALL) == [COPY, 'RUN composer install "--no-scripts" "--no-dev"']
    assert phase_lines(Php(REQS), Phase.PRE_INSTALL) == [COPY, 'RUN composer install "--no-scripts"']
    assert phase_lines(Php(), Phase.PRE_INSTALL) == []
    assert phase_lines(php, Phase.POST_INSTALL) == []


def test_merge() -> None:
    assert Php(REQS, True).merge(Php(production=False)) == Php(REQS, False)
    assert Php(REQS, True).merge(Php(requirements=())) == Php((), True)
