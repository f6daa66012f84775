"""Deliberate mutations of the program's declarations: each must make a FAST test fail (no Docker, no server).

A declaration is pinned by the tests of the module that declares it: the program runs under Pulumi's mocks
(tests/test_program.py), which see every registered input and, through the harness, every resource option.
This script proves that for the declarations listed below: in a copy of the working tree it first runs the
fast tests unchanged (they must pass), then, one mutation at a time, edits one snippet, runs them again, expects
the named test among the failures, and puts the snippet back.

    uv run python tests/mutations.py                  # every mutation
    uv run python tests/mutations.py worker-wait ...  # some, by name

It exits 1 when a mutation is caught by no test, or not by the one named here, and 2 before running anything
when a snippet no longer occurs exactly once in its file (the program was edited: update the snippet).

Measured 2026-11-28 (`uv run python tests/mutations.py`, 7 to 9 min on a shared 2-core machine): 27 of 27
caught, each by the test named below (+ other tests that failed too):

    mutation                          caught by (tests/test_program.py)
    worker-delete-before-replace      test_worker_is_replaced_and_waited_for_on_any_change
    worker-replace-on-changes         test_worker_is_replaced_and_waited_for_on_any_change
    worker-ignore-changes             test_worker_is_replaced_and_waited_for_on_any_change
    worker-after-pool                 test_worker_is_replaced_and_waited_for_on_any_change
    pool-after-image                  test_worker_is_replaced_and_waited_for_on_any_change
    worker-wait                       test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    worker-security-opts              test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    worker-cap-drop                   test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    worker-no-create-pool             test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    worker-destroy-grace              test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    healthcheck-pool-check            test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server
    worker-memory-swap                test_worker_declares_its_inputs_in_the_form_pulumi_docker_reads_them_back
    push-when-push-is-off             test_dev_stack_declares_image_pool_worker_deployment_and_smoke_run
                                      + test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server
    pool-template                     test_dev_stack_declares_image_pool_worker_deployment_and_smoke_run
    schedule-active-ignored           test_dev_stack_schedule_can_be_declared_inactive
    run-containers-cap-drop           test_cloud_deployment_points_docker_runs_at_the_pushed_image
                                      + test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server
    pull-when-unpushed                test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server
    deployment-after-image            test_deployment_is_declared_after_the_image_and_the_pool
    deployment-after-pool             test_deployment_is_declared_after_the_image_and_the_pool
    enforce-parameter-schema          test_dev_deployment_runs_daily_at_0900_with_the_flows_own_schema
    push-without-credentials          test_cloud_stack_pushes_with_registry_credentials
                                      + test_credentials_appear_only_inside_secrets (both stacks)
    image-on-default-daemon           test_image_and_workers_use_one_docker_provider_for_the_configured_daemon
    alerts-any-deployment             test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each
    alerts-late-runs                  test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each
    alerts-one-per-run                test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each
    alerts-enabled-ignored            test_alerts_can_be_declared_disabled
    run-containers-no-new-privileges  test_cloud_deployment_points_docker_runs_at_the_pushed_image
                                      + test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server
    smoke-run-before-workers          test_the_smoke_run_waits_for_the_deployment_and_every_worker
    smoke-run-ignores-code-version    test_the_smoke_run_checks_what_the_deployment_has_after_this_up
    smoke-run-enabled-ignored         test_the_smoke_run_is_exported_and_can_be_turned_off
    smoke-run-deployment-by-output    test_the_smoke_run_checks_what_the_deployment_has_after_this_up

The same script over the fast tests of main before issue 15's audit (d54a0e6) caught 16 of 23: no fast test
at all failed for worker-security-opts, pool-template, schedule-active-ignored, pull-when-unpushed,
deployment-after-image, deployment-after-pool or enforce-parameter-schema. The alerts (merged from main at
c0b8a44) had fast tests in tests/test_alerts.py, which expect the trigger from infra.alerts' own
failure_trigger(): with those (`-m "not docker"`) and test_program.py before its alerts tests, no fast test
failed for any of the four alerts mutations.
The smoke run's three (measured 2026-11-29, `uv run python tests/mutations.py smoke-run-before-workers
smoke-run-ignores-code-version smoke-run-enabled-ignored`: 3 of 3, each by the named test alone): no fast test
caught smoke-run-before-workers before test_the_smoke_run_waits_for_the_deployment_and_every_worker was added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST_TESTS = ("tests/test_program.py",)
PROGRAM_TESTS = "tests/test_program.py::"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository
    old: str  # occurs exactly once in `path`
    new: str
    caught_by: str  # a pytest node id (its parametrized ids included when there are any)


MUTATIONS = (
    Mutation(
        "worker-delete-before-replace",
        "infra/worker.py",
        "delete_before_replace=True,",
        "delete_before_replace=False,",
        PROGRAM_TESTS + "test_worker_is_replaced_and_waited_for_on_any_change",
    ),
    Mutation(
        "worker-replace-on-changes",
        "infra/worker.py",
        'replace_on_changes=["*"],',
        "",
        PROGRAM_TESTS + "test_worker_is_replaced_and_waited_for_on_any_change",
    ),
    Mutation(
        "worker-ignore-changes",
        "infra/worker.py",
        'ignore_changes=["memorySwap"],',
        "",
        PROGRAM_TESTS + "test_worker_is_replaced_and_waited_for_on_any_change",
    ),
    Mutation(
        "worker-after-pool",
        "infra/worker.py",
        "depends_on=[pool],",
        "",
        PROGRAM_TESTS + "test_worker_is_replaced_and_waited_for_on_any_change",
    ),
    Mutation(
        "pool-after-image",
        "infra/program.py",
        "opts=pulumi.ResourceOptions(depends_on=[image.resource]),\n    )\n    workers",
        ")\n    workers",
        PROGRAM_TESTS + "test_worker_is_replaced_and_waited_for_on_any_change",
    ),
    Mutation(
        "worker-wait",
        "infra/worker.py",
        "wait=True,",
        "wait=False,",
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "worker-security-opts",
        "infra/worker.py",
        'security_opts=["no-new-privileges:true"],',
        "",
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "worker-cap-drop",
        "infra/worker.py",
        'capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),',
        "",
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "worker-no-create-pool",
        "infra/worker.py",
        '"--no-create-pool-if-not-found",',
        "",
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "worker-destroy-grace",
        "infra/worker.py",
        "destroy_grace_seconds=STOP_GRACE_SECONDS,",
        "",
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "healthcheck-pool-check",
        "infra/worker.py",
        '"worker.healthcheck", "--pool", pool_name]',
        '"worker.healthcheck"]',
        PROGRAM_TESTS + "test_dev_worker_runs_from_the_image_digest_and_reaches_the_local_server",
    ),
    Mutation(
        "worker-memory-swap",
        "infra/worker.py",
        "memory_swap=",
        "# memory_swap=",  # the argument commented out, whatever its value is
        PROGRAM_TESTS + "test_worker_declares_its_inputs_in_the_form_pulumi_docker_reads_them_back",
    ),
    Mutation(
        "push-when-push-is-off",
        "infra/image.py",
        "skip_push=not settings.push,",
        "skip_push=False,",
        PROGRAM_TESTS + "test_dev_stack_declares_image_pool_worker_deployment_and_smoke_run",
    ),
    Mutation(
        "pool-template",
        "infra/program.py",
        "base_job_template=worker_base_job_template(config.pool_type),",
        "",
        PROGRAM_TESTS + "test_dev_stack_declares_image_pool_worker_deployment_and_smoke_run",
    ),
    Mutation(
        "schedule-active-ignored",
        "infra/flow_deployment.py",
        '"active": config.schedule.active,',
        '"active": True,',
        PROGRAM_TESTS + "test_dev_stack_schedule_can_be_declared_inactive",
    ),
    Mutation(
        "run-containers-cap-drop",
        "infra/flow_deployment.py",
        '{"cap_drop": ["ALL"], "security_opt"',
        '{"security_opt"',
        PROGRAM_TESTS + "test_cloud_deployment_points_docker_runs_at_the_pushed_image",
    ),
    Mutation(
        "pull-when-unpushed",
        "infra/flow_deployment.py",
        '"IfNotPresent" if config.image.push else "Never"',
        '"IfNotPresent"',
        PROGRAM_TESTS + "test_dev_docker_pool_runs_use_the_unpushed_image_and_reach_the_local_server",
    ),
    Mutation(
        "deployment-after-image",
        "infra/flow_deployment.py",
        "opts=pulumi.ResourceOptions(depends_on=[image.resource]),",
        "",
        PROGRAM_TESTS + "test_deployment_is_declared_after_the_image_and_the_pool",
    ),
    Mutation(
        "deployment-after-pool",
        "infra/flow_deployment.py",
        "work_pool_name=pool_name,",
        "work_pool_name=config.pool_name,",
        PROGRAM_TESTS + "test_deployment_is_declared_after_the_image_and_the_pool",
    ),
    Mutation(
        "enforce-parameter-schema",
        "infra/flow_deployment.py",
        "enforce_parameter_schema=True,",
        "enforce_parameter_schema=False,",
        PROGRAM_TESTS + "test_dev_deployment_runs_daily_at_0900_with_the_flows_own_schema",
    ),
    Mutation(
        "push-without-credentials",
        "infra/image.py",
        "registry=registry,",
        "registry=None,",
        PROGRAM_TESTS + "test_cloud_stack_pushes_with_registry_credentials",
    ),
    Mutation(
        "image-on-default-daemon",
        "infra/image.py",
        "opts=pulumi.ResourceOptions(provider=provider),",
        "",
        PROGRAM_TESTS + "test_image_and_workers_use_one_docker_provider_for_the_configured_daemon",
    ),
    Mutation(
        "alerts-any-deployment",
        "infra/alerts.py",
        '"prefect.resource.id": f"prefect.deployment.{deployment_id}",',
        '"prefect.resource.id": "prefect.deployment.*",',
        PROGRAM_TESTS + "test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each",
    ),
    Mutation(
        "alerts-late-runs",
        "infra/alerts.py",
        'ALERT_STATES = ("Failed", "Crashed", "TimedOut", "Late")',
        'ALERT_STATES = ("Failed", "Crashed", "TimedOut")',
        PROGRAM_TESTS + "test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each",
    ),
    Mutation(
        "alerts-one-per-run",
        "infra/alerts.py",
        '"for_each": ["prefect.resource.id"],',
        "",
        PROGRAM_TESTS + "test_alerts_watch_this_deployments_failed_and_late_runs_one_alert_each",
    ),
    Mutation(
        "alerts-enabled-ignored",
        "infra/alerts.py",
        "enabled=settings.enabled,",
        "enabled=True,",
        PROGRAM_TESTS + "test_alerts_can_be_declared_disabled",
    ),
    Mutation(
        "run-containers-no-new-privileges",
        "infra/flow_deployment.py",
        '"security_opt": ["no-new-privileges:true"]}',
        "}",
        PROGRAM_TESTS + "test_cloud_deployment_points_docker_runs_at_the_pushed_image",
    ),
    Mutation(
        "smoke-run-before-workers",
        "infra/smoke_run.py",
        "depends_on=[deployment, *workers]",
        "depends_on=[deployment]",
        PROGRAM_TESTS + "test_the_smoke_run_waits_for_the_deployment_and_every_worker",
    ),
    Mutation(
        "smoke-run-ignores-code-version",
        "infra/prefect/flow_run_check.py",
        '**{key: getattr(deployment, key) for key in RUN_KEYS if key != "deployment_id"},',
        '**{key: getattr(deployment, key) for key in RUN_KEYS if key not in ("deployment_id", "version")},',
        PROGRAM_TESTS + "test_the_smoke_run_checks_what_the_deployment_has_after_this_up",
    ),
    Mutation(
        "smoke-run-deployment-by-output",
        "infra/prefect/flow_run_check.py",
        '"deployment_id": deployment.id,',
        '"deployment_id": deployment.deployment_id,',
        PROGRAM_TESTS + "test_the_smoke_run_checks_what_the_deployment_has_after_this_up",
    ),
    Mutation(
        "smoke-run-enabled-ignored",
        "infra/smoke_run.py",
        "if not config.smoke_run.enabled:",
        "if False:",
        PROGRAM_TESTS + "test_the_smoke_run_is_exported_and_can_be_turned_off",
    ),
)


def copy_working_tree(destination: Path) -> None:
    """The files git tracks and the untracked ones it does not ignore, as they are now (no .venv, no .git)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def failing_tests(tree: Path) -> set[str]:
    """Run the fast tests in `tree`; the node ids of those that failed or errored."""
    report = tree / "fast-tests.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"--junitxml={report}", *FAST_TESTS],
        cwd=tree, capture_output=True, check=False,
    )  # fmt: skip
    failed = set()
    for case in ElementTree.parse(report).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            module = str(case.get("classname")).replace(".", "/") + ".py"
            failed.add(f"{module}::{case.get('name')}")
    return failed


def caught(mutation: Mutation, failed: set[str]) -> bool:
    """The named test failed (or one of its parametrized cases)."""
    return any(node == mutation.caught_by or node.startswith(mutation.caught_by + "[") for node in failed)


def misplaced(mutations: list[Mutation]) -> list[str]:
    """The mutations whose snippet does not occur exactly once in its file, each with its count."""
    problems = []
    for mutation in mutations:
        count = (REPO_ROOT / mutation.path).read_text().count(mutation.old)
        if count != 1:
            problems.append(f"{mutation.name}: {mutation.old!r} occurs {count} times in {mutation.path}")
    return problems


def apply(tree: Path, mutation: Mutation) -> str:
    """Edit the copy; returns the original text of the file, to put back."""
    path = tree / mutation.path
    original = path.read_text()
    path.write_text(original.replace(mutation.old, mutation.new, 1))
    return original


def main(names: list[str]) -> int:
    unknown = set(names) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    problems = misplaced(chosen)
    if problems:
        print("Snippets to update before the check can run:", *problems, sep="\n  ")
        return 2
    with tempfile.TemporaryDirectory(prefix="mutations-") as temp:
        tree = Path(temp)
        copy_working_tree(tree)
        baseline = failing_tests(tree)
        if baseline:
            print("The fast tests fail without any mutation:", *sorted(baseline), sep="\n  ")
            return 1
        missed = 0
        print(f"{'mutation':34} {'caught':7} by (the named test first; others that failed too)")
        for mutation in chosen:
            original = apply(tree, mutation)
            try:
                failed = failing_tests(tree)
            finally:
                (tree / mutation.path).write_text(original)
            ok = caught(mutation, failed)
            missed += not ok
            others = sorted(node.split("::", 1)[1] for node in failed if not caught(mutation, {node}))
            named = mutation.caught_by.split("::", 1)[1]
            print(
                f"{mutation.name:34} {'yes' if ok else 'NO':7} {named}"
                + "".join(f"\n{'':42} + {o}" for o in others)
            )
    print(f"{len(chosen) - missed} of {len(chosen)} mutations caught by the named fast test")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
