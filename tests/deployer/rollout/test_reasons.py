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


def test_a_missing_secret_or_key_says_to_create_it_in_the_release_namespace() -> None:
    # the kubelet's messages (pkg/kubelet/kubelet_pods.go) for a secretKeyRef it cannot resolve
    for message in ('secret "db" not found', "couldn't find key url in Secret esec-1a2b3c/db"):
        rule = classify("CreateContainerConfigError", message)
        assert rule.kind is Kind.DEFINITIVE
        assert "kubectl create secret generic <secret> --from-literal=<key>=... -n <namespace>" in rule.hint
        assert "secretEnv" in rule.hint
    # other config errors keep their own hints
    assert "ConfigMap" in classify("CreateContainerConfigError", 'configmap "web-config" not found').hint
    assert "not numeric" in classify("CreateContainerConfigError", "non-numeric user (app)").hint


def test_a_secret_cache_not_synced_yet_waits_for_the_kubelets_next_try() -> None:
    # the kubelet's first message for a Secret it has just started to watch (it exists, or not)
    rule = classify(
        "CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition"
    )
    assert rule.kind is Kind.TRANSIENT
    assert (
        classify("CreateContainerConfigError", "failed to sync configmap cache: timed out").kind
        is Kind.TRANSIENT
    )
