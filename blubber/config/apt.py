"""`apt`: Debian packages (per target release), extra sources (optionally signed) and proxies.

Privileged phase, only when there are packages: `ENV DEBIAN_FRONTEND="noninteractive"` and one RUN that
writes the proxies (first, so every fetch uses them) and sources, updates, installs each release's packages
(releases sorted; `default` = no `-t`), then removes the lists, the proxy file and the sources file, so
none of it stays in the image.
A source with `signed-by` gets its key written to /etc/apt/keyrings/<sha256>.asc and referenced from its
`deb [signed-by=…]` line; when there are sources, ca-certificates is installed first so HTTPS sources work.
Merge: `packages` appends per release (duplicates kept, as upstream); `sources` and `proxies` append.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from blubber.config._base import Checker, StageContext
from blubber.dockerfile.instructions import Cmd, Env, Instruction, Run
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import field, frozen

SOURCES_FILE = "/etc/apt/sources.list.d/99blubber.list"
PROXIES_FILE = "/etc/apt/apt.conf.d/99blubber-proxies"
KEYRINGS = "/etc/apt/keyrings"


@frozen
class Source:
    url: str
    distribution: str
    components: tuple[str, ...] = ()
    signed_by: str | None = None

    @property
    def keyring(self) -> str | None:
        if not self.signed_by:
            return None
        import hashlib  # few configs sign a source: not worth its import in every `blubber` process

        return f"{KEYRINGS}/{hashlib.sha256(self.signed_by.encode()).hexdigest()}.asc"

    def line(self) -> str:
        signed = f"[signed-by={self.keyring}] " if self.signed_by else ""
        return " ".join([f"deb {signed}{self.url}", self.distribution, *self.components])


@frozen
class Proxy:
    url: str
    source: str | None = None

    def line(self) -> str:
        if self.source:
            src = urlsplit(self.source)
            return f'Acquire::{src.scheme}::Proxy::{src.hostname} "{self.url}";'
        return f'Acquire::{urlsplit(self.url).scheme}::Proxy "{self.url}";'


@frozen
class Apt:
    packages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()
    proxies: tuple[Proxy, ...] = ()
    # Written as a plain list (the `default` release)? Only for error paths: packages[1] vs packages.x[1].
    listed: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, raw: dict | None) -> Apt:
        raw = raw or {}
        packages = raw.get("packages") or {}
        if isinstance(packages, list):
            packages = {"default": packages}
        sources = tuple(
            Source(s["url"], s["distribution"], tuple(s.get("components") or ()), s.get("signed-by"))
            for s in raw.get("sources") or ()
        )
        proxies = tuple(
            Proxy(p) if isinstance(p, str) else Proxy(p["url"], p.get("source"))
            for p in raw.get("proxies") or ()
        )
        listed = isinstance(raw.get("packages"), list)
        return cls({k: tuple(v) for k, v in packages.items()}, sources, proxies, listed)

    def merge(self, other: Apt) -> Apt:
        packages = dict(self.packages)
        for release, names in other.packages.items():
            packages[release] = packages.get(release, ()) + names
        return Apt(packages, self.sources + other.sources, self.proxies + other.proxies)

    def check(self, c: Checker, at: YamlPath) -> None:
        for release, names in self.packages.items():
            c.rule("debianrelease", release, (*at, "packages", release))
            for i, name in enumerate(names):
                where = (*at, "packages", i) if self.listed else (*at, "packages", release, i)
                c.rule("debianpackage", name, where)
        for i, s in enumerate(self.sources):
            here = (*at, "sources", i)
            c.rule("httpurl", s.url, (*here, "url"))
            c.rule("debianrelease", s.distribution, (*here, "distribution"))
            c.text(s.distribution, (*here, "distribution"), "distribution")
            for j, comp in enumerate(s.components):
                c.rule("debiancomponent", comp, (*here, "components", j)) and c.text(
                    comp, (*here, "components", j), "component"
                )
        for i, p in enumerate(self.proxies):
            c.rule("httpurl", p.url, (*at, "proxies", i, "url"))
            if p.source is not None:
                c.rule("httpurl", p.source, (*at, "proxies", i, "source"))

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase != Phase.PRIVILEGED or not any(self.packages.values()):
            return []
        # Proxies first: in a network where only the proxy reaches the mirrors, every fetch needs them.
        cmds: list[Cmd] = [Cmd(f"echo %s >> {PROXIES_FILE}", (p.line(),)) for p in self.proxies]
        if self.sources:
            cmds += [Cmd("apt-get update"), Cmd("apt-get install -y", ("ca-certificates",))]
            if any(s.signed_by for s in self.sources):
                cmds.append(Cmd("mkdir -p %s", (KEYRINGS,)))
            for s in self.sources:
                if s.signed_by:
                    # printf %b turns the \n we write back into newlines; backslashes are doubled first.
                    key = s.signed_by.replace("\\", "\\\\").replace("\n", "\\n")
                    cmds.append(Cmd("printf '%%b' %s > %s", (key, s.keyring)))
                cmds.append(Cmd(f"echo %s >> {SOURCES_FILE}", (s.line(),)))
        cmds.append(Cmd("apt-get update"))
        for release in sorted(self.packages):
            names = self.packages[release]
            if not names:
                continue
            if release == "default":
                cmds.append(Cmd("apt-get install -y", names))
            else:
                cmds.append(Cmd("apt-get install -y -t %s", (release, *names)))
        cmds.append(Cmd("rm -rf /var/lib/apt/lists/*"))
        if self.proxies:
            cmds.append(Cmd("rm -f %s", (PROXIES_FILE,)))
        if self.sources:
            cmds.append(Cmd("rm -f %s", (SOURCES_FILE,)))
        return [Env.of({"DEBIAN_FRONTEND": "noninteractive"}), Run(tuple(cmds))]
