"""The five build phases, in the order their instructions appear in a stage.

Who runs each phase (spec §4.3): PRIVILEGED runs as root; PRIVILEGE_DROPPED, PRE_INSTALL and INSTALL run as
the `lives` user (owner of the application files); POST_INSTALL runs as the `runs` user unless
`runs.insecurely` is true.
"""

from __future__ import annotations

import enum


class Phase(enum.IntEnum):
    PRIVILEGED = 1  # root: base image, apt, users and directories
    PRIVILEGE_DROPPED = 2  # lives user: HOME, WORKDIR, runs.environment
    PRE_INSTALL = 3  # lives user: requirement files, then dependency installs (cached until they change)
    INSTALL = 4  # lives user: `copies` (application files)
    POST_INSTALL = 5  # runs user: USER switch, builder post-install steps, runtime dir, entrypoint
