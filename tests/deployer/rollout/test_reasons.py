"""deployer.rollout.reasons: the table's lookup rules."""

from __future__ import annotations

from deployer.rollout.reasons import RULES, Kind, classify


def test_message_patterns_narrow_a_reason() -> None:
    assert classify("ErrImagePull", "...: not found").kind is Kind.DEFINITIVE
    assert classify("ErrImagePull", "dial tcp: i/o timeout").kind is Kind.TRANSIENT


def test_init_prefix_and_exit_codes() -> None:
    assert classify("Init:CrashLoopBackOff") is classify("CrashLoopBackOff")
    assert classify("ExitCode:3").reason == "ExitCode:*"
    assert classify("ExitCode:127").kind is Kind.DEFINITIVE
    assert classify("Signal:15").reason == "Signal"


def test_unknown_reasons_never_fail_by_themselves() -> None:
    assert classify("SomethingNew", "x").kind is Kind.TRANSIENT


def test_every_rule_has_a_hint() -> None:
    assert all(rule.hint for rule in RULES)
