"""The named checks shared by config validation and policies."""

from __future__ import annotations

import pytest

from blubber.checks import CHECKS, problem


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("abspath", ["/srv/app", "/a/b/"], ["/", "/foo/..", "foo/bar", "", 5]),
        ("imageref", ["debian:bullseye", "127.0.0.1:5000/base/bookworm:12", "foo/bar",
                      "golang@sha256:" + "a" * 64, "localhost:5000/a_b/c-d.e:1.0"],
         ["foo fighter", "Debian", "foo:", ":tag", "a//b", ""]),
        ("username", ["foo-bar.baz", "somebody", "runuser"], ["foo bar", "fo", "root", "1abc"]),
        ("variantname", ["build", "foo.bar-1", "abc"], ["ci", "build foo", "foo_build", "foo-", "1abc"]),
        ("nodeenv", ["production", "dev1"], ["foo bar", "prod-1", ""]),
        ("pypkgver", ["==1.5.1", ">=1.0,!=1.0.3,<2.0", "~=26.0"], ["1.5.1", "==", "==1.0,", ">= 1"]),
        ("debianpackage", ["f1", "bar+b.az=0:0.1~foo1-1", "bar+b.az/stable"], ["f", "foo fighter", "bar_baz"]),  # noqa: E501
        ("debianrelease", ["bullseye-backports", "default"], ["---", "123", "x!", "bookworm [trusted=yes] evil"]),  # noqa: E501
        ("debiancomponent", ["main", "thirdparty/amd-rocm54"], ["--", "A", "main contrib", "main [x]"]),
        (
            "httpurl",
            ["http://a", "https://a.b/c", "http://u:p@[::1]:3142/x?y=1#z"],
            ["bad://x", "http://", "http://a b", "ftp://x", "http://:80", "http://a:99999",
             'http://p:3142/";DPkg::Pre-Invoke{"touch${IFS}/INJECTED";};//', "http://a/;b", "http://a/{b}",
             "http://a/'b", "http://a/`b`", "http://a/$b", "http://a/\\b"],
        ),
        ("envvars", [{"FOO": "1", "_F": "2"}], [{"A": "x"}, {"1FOO": "x"}, {"a-b": "x"}]),
        ("currentversion", ["v4"], ["v3", "4"]),
        ("isfalse", [False, None], [True]),
        ("istrue", [True], [False, None]),
    ],
)  # fmt: skip
def test_checks(name: str, good: list, bad: list) -> None:
    check = CHECKS[name]
    assert [v for v in good if not check.test(v)] == []
    assert [v for v in bad if check.test(v)] == []


def test_messages() -> None:
    assert problem("abspath", "/") == '"/" is not a valid absolute non-root path'
    assert problem("imageref", "foo fighter") == '"foo fighter" is not a valid image reference'
    assert problem("currentversion", "vX") == 'config version "vX" is unsupported'
    assert problem("envvars", {"a b": "c"}) == "contains invalid environment variable names"
    assert problem("abspath", "/srv") is None
