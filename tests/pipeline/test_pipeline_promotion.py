"""The promotion order of azure-pipelines.yml: build -> (PR: preview) -> deploy dev -> deploy prod, deploys
only from main through deployment jobs bound to environments, never on pull requests. Each rule is shown
to pass on the real pipeline and to reject a pipeline broken in the way it guards against."""

from __future__ import annotations

import copy
import re

import pipeline_rules as rules
import pytest


@pytest.fixture
def bad(doc):
    return copy.deepcopy(doc)


@pytest.mark.parametrize("rule", list(rules.RULES))
def test_rule_holds_for_the_pipeline(doc, rule):
    assert rules.RULES[rule](doc) == []


def test_stage_order_and_dependencies(doc):
    assert [s["stage"] for s in rules.stages(doc)] == ["Build", "Preview", "DeployDev", "PlanProd", "DeployProd"]
    assert {s["stage"]: rules.dependencies(doc, s) for s in rules.stages(doc)} == {
        "Build": [], "Preview": ["Build"], "DeployDev": ["Build"], "PlanProd": ["DeployDev"],
        "DeployProd": ["DeployDev", "PlanProd"]}


@pytest.mark.parametrize("run,expected", [
    ("pull request into main", {"Build", "Preview"}),
    ("push to main", {"Build", "DeployDev", "PlanProd", "DeployProd"}),
    ("batched push to main", {"Build", "DeployDev", "PlanProd", "DeployProd"}),
    ("manual run of main", {"Build", "DeployDev", "PlanProd", "DeployProd"}),
    ("push to a feature branch", {"Build"}),
    ("manual run of a feature branch", {"Build"}),
    ("push to a branch named like main", {"Build"}),
])
def test_which_stages_run(doc, run, expected):
    assert rules.ran(rules.simulate(doc, rules.RUNS[run])) == expected


def test_deploying_stages_are_exactly_the_deploy_stages(doc):
    assert rules.deploying_stages(doc) == {"DeployDev", "DeployProd"}


def test_failures_stop_the_promotion(doc):
    main = rules.RUNS["push to main"]
    assert rules.simulate(doc, main, fail={"DeployDev"})["DeployProd"] == "Skipped"
    after_build_failure = rules.simulate(doc, main, fail={"Build"})
    assert after_build_failure["DeployDev"] == after_build_failure["DeployProd"] == "Skipped"


def test_the_condition_model_follows_azure_semantics():
    ev = rules.evaluate
    p = rules.parse_condition
    v = {"Build.SourceBranch": "refs/heads/main", "Build.Reason": "PullRequest"}
    assert ev(p("and(succeeded(), eq(variables['Build.SourceBranch'], 'REFS/heads/main'))"), v, ["Succeeded"])
    assert not ev(p("succeeded()"), v, ["Skipped"]), "a skipped dependency is not success"
    assert ev(p("succeeded()"), v, [])
    assert ev(p("in(variables['Build.Reason'], 'Manual', 'PullRequest')"), v, [])
    assert ev(p("not(startsWith(variables.Build.SourceBranch, 'refs/pull/'))"), v, [])
    assert ev(p("eq('it''s', 'IT''S')"), v, [])
    with pytest.raises(rules.ConditionError):
        rules.parse_condition("and(succeeded(), eq(variables['x'], 'y')")


def test_build_runs_the_readme_test_command_verbatim(doc):
    command = rules.readme_test_command()
    assert command == "python3 -m pip install -q uv && uv run --locked pytest"
    scripts = [rules.step_script(step) for _, step in rules.stage_steps(rules.stage_by_id(doc, "Build"))]
    assert command in scripts


def test_no_secret_values_in_the_pipeline():
    """Secrets are referenced ($(VAR) from a variable group, or the job token), never written down."""
    text = rules.PIPELINE.read_text()
    for name in ("PULUMI_CONFIG_PASSPHRASE", "ARM_CLIENT_SECRET", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET",
                 "AZURE_STORAGE_KEY", "SYSTEM_ACCESSTOKEN"):
        for match in re.finditer(rf"^\s*{name}:\s*(.+)$", text, re.MULTILINE):
            assert re.fullmatch(r"\$\([\w.]+\)", match.group(1).strip()), f"{name} has a literal value"
    assert not re.search(r"dapi[0-9a-f]{8,}", text)


def test_databricks_and_pulumi_run_under_the_azure_cli_login(doc):
    """Everything that talks to Azure or Databricks runs inside an AzureCLI@2 task (workload identity
    federation through the service connection), with Databricks auth type azure-cli."""
    for stage in rules.stages(doc):
        variables = stage.get("variables") or []
        named = {v.get("name"): v.get("value") for v in variables if "name" in v}
        groups = [v["group"] for v in variables if "group" in v]
        if stage["stage"] == "Build":
            # The build (which runs pull request code first) gets neither credentials nor backend settings.
            assert not variables
            continue
        assert named["DATABRICKS_AUTH_TYPE"] == "azure-cli", stage["stage"]
        assert named["AZURE_KEYVAULT_AUTH_VIA_CLI"] == "true", stage["stage"]
        assert groups == ["lakehouse-mlops-pulumi"], stage["stage"]
    top = [v.get("name") or v.get("group") for v in doc["variables"]]
    assert "DATABRICKS_AUTH_TYPE" not in top and "lakehouse-mlops-pulumi" not in top
    for stage in rules.stages(doc):
        for _, step in rules.stage_steps(stage):
            text = rules.step_script(step)
            if re.search(r"\bpulumi (login|preview|up)\b|smoke\.py|\buv run (--locked )?mlops\b", text):
                assert step.get("task") == "AzureCLI@2", text
                subscription = step["inputs"]["azureSubscription"]
                env = "dev" if stage["stage"] == "DeployDev" or "--stack dev" in text else "prod"
                kind = "Preview" if stage["stage"] in ("Preview", "PlanProd") else ""  # the read-only identities
                assert subscription == f"${{{{ parameters.{env}{kind}ServiceConnection }}}}", (stage["stage"], text)


# ----------------------------------------------------------------------- mutated pipelines
def test_prod_not_depending_on_dev_is_rejected(bad):
    rules.stage_by_id(bad, "DeployProd")["dependsOn"] = "Build"
    assert "DeployProd does not depend on DeployDev" in rules.check_rules(bad)


def test_implicit_dependency_on_the_previous_stage_is_understood(doc, bad):
    """Without dependsOn a stage depends on the stage before it: dropping prod's dependsOn keeps the order,
    moving prod before dev without one breaks it."""
    del rules.stage_by_id(bad, "DeployProd")["dependsOn"]
    assert rules.check_rules(bad) == []
    moved = copy.deepcopy(doc)
    prod = rules.stage_by_id(moved, "DeployProd")
    del prod["dependsOn"]
    moved["stages"].remove(prod)
    moved["stages"].insert(2, prod)
    assert "DeployProd does not depend on DeployDev" in rules.check_rules(moved)


@pytest.mark.parametrize("stage,condition", [
    ("DeployDev", "succeeded()"),
    ("DeployDev", None),
    ("DeployProd", "always()"),
    ("DeployProd", "or(succeeded(), eq(variables['Build.Reason'], 'PullRequest'))"),
])
def test_deploy_stage_reachable_on_a_pull_request_is_rejected(bad, stage, condition):
    target = rules.stage_by_id(bad, stage)
    if condition is None:
        del target["condition"]
    else:
        target["condition"] = condition
    problems = rules.check_runs(bad)
    assert any(p.startswith("pull request into main: deploying stages run") and stage in p for p in problems), problems


@pytest.mark.parametrize("condition,problem", [
    # deploying from any branch
    ("and(succeeded(), ne(variables['Build.Reason'], 'PullRequest'))", "push to a feature branch"),
    # a branch name check instead of the ref
    ("and(succeeded(), eq(variables['Build.SourceBranchName'], 'main'))", "push to a branch named like main"),
], ids=["any-branch", "branch-name-not-ref"])
def test_deploying_off_main_is_rejected(bad, condition, problem):
    for stage in ("DeployDev", "DeployProd"):
        rules.stage_by_id(bad, stage)["condition"] = condition
    problems = rules.check_runs(bad)
    assert any(p.startswith(f"{problem}: deploying stages run") for p in problems), problems


def test_deploy_that_never_runs_on_main_is_rejected(bad):
    rules.stage_by_id(bad, "DeployProd")["condition"] = "and(succeeded(), eq(variables['Build.Reason'], 'Schedule'))"
    assert "push to main: ['DeployProd'] do not run" in rules.check_runs(bad)


def test_prod_running_after_a_failed_dev_is_rejected(bad):
    rules.stage_by_id(bad, "DeployProd")["condition"] = (
        "and(eq(variables['Build.SourceBranch'], 'refs/heads/main'), ne(variables['Build.Reason'], 'PullRequest'))")
    assert "push to main with DeployDev failing: ['DeployProd'] still run" in rules.check_runs(bad)


def test_plain_job_instead_of_deployment_job_is_rejected(bad):
    stage = rules.stage_by_id(bad, "DeployProd")
    deployment = stage["jobs"][0]
    stage["jobs"][0] = {"job": "DeployProd", "steps": rules.job_steps(deployment)}
    problems = rules.check_rules(bad)
    assert f"DeployProd's deployment jobs are not bound to environment {rules.PROD_ENV}" in problems
    assert "DeployProd/DeployProd runs `pulumi up` outside a deployment job bound to an environment" in problems
    assert "DeployProd/DeployProd runs `mlops promote` outside a deployment job bound to an environment" in problems


def test_prod_bound_to_the_dev_environment_is_rejected(bad):
    rules.stage_by_id(bad, "DeployProd")["jobs"][0]["environment"] = rules.DEV_ENV
    assert f"DeployProd's deployment jobs are not bound to environment {rules.PROD_ENV}" in rules.check_rules(bad)


def test_pulumi_up_in_the_preview_stage_is_rejected(bad):
    steps = rules.stage_by_id(bad, "Preview")["jobs"][0]["steps"]
    cli = next(s for s in steps if s.get("task") == "AzureCLI@2")
    cli["inputs"]["inlineScript"] = cli["inputs"]["inlineScript"].replace("pulumi preview", "pulumi up --yes")
    problems = rules.check_rules(bad)
    assert "Preview/Preview runs `pulumi up` outside a deployment job bound to an environment" in problems
    assert any(p.startswith("pull request into main: deploying stages run: ['Preview']") for p in problems)


def test_preview_without_the_policy_pack_is_rejected(bad):
    for step in rules.stage_by_id(bad, "Preview")["jobs"][0]["steps"]:
        if step.get("task") == "AzureCLI@2":
            step["inputs"]["inlineScript"] = step["inputs"]["inlineScript"].replace(" --policy-pack infra/policy", "")
    problems = rules.check_preview(bad)
    assert problems == [f"Preview does not run `pulumi preview --diff --policy-pack infra/policy` for {s}"
                        for s in ("dev", "prod")]


def test_promoting_before_prod_is_up_is_rejected(bad):
    steps = rules.stage_by_id(bad, "DeployProd")["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    up = next(i for i, s in enumerate(steps) if "pulumi up" in rules.step_script(s))
    promote = next(i for i, s in enumerate(steps) if "mlops --backend" in rules.step_script(s))
    steps[up], steps[promote] = steps[promote], steps[up]
    assert ("DeployProd runs mlops promote --from dev --to prod before pulumi up --stack prod --plan <the approved "
            "plan> --yes") in \
        rules.check_deploy_prod(bad)


def test_changed_test_command_is_rejected(bad):
    for step in rules.stage_by_id(bad, "Build")["jobs"][0]["steps"]:
        if "script" in step and "pytest" in step["script"]:
            step["script"] = "python3 -m pip install -q uv && uv run pytest -x"
    assert any(p.startswith("Build does not run the README test command verbatim") for p in rules.check_build(bad))


def test_smoke_dropped_from_dev_is_rejected(bad):
    deploy = rules.stage_by_id(bad, "DeployDev")["jobs"][0]["strategy"]["runOnce"]["deploy"]
    deploy["steps"] = [s for s in deploy["steps"] if "smoke.py" not in rules.step_script(s)]
    assert "DeployDev does not run the smoke test after `pulumi up`" in rules.check_deploy_dev(bad)


# ------------------------------------------------------------------ the approved plan (issue 19)
def _plan_step(doc) -> dict:
    return next(s for _, s in rules.stage_steps(rules.stage_by_id(doc, "PlanProd")) if s.get("name") == "plan")


def _prod_steps(doc) -> list[dict]:
    return rules.job_steps(rules.stage_by_id(doc, "DeployProd")["jobs"][0])


def test_prod_applies_the_plan_saved_before_the_approval(doc):
    """PlanProd (no environment, so before the approval) saves the preview as a plan and shows it; DeployProd (the
    approval) applies that file and previews nothing of its own."""
    plan = _plan_step(doc)
    script = plan["inputs"]["inlineScript"]
    assert re.search(r"pulumi preview --stack prod .*--policy-pack infra/policy \\\n\s*--save-plan \"\$out/plan\.json\"",
                     script)
    assert "##vso[task.uploadsummary]$out/summary.md" in script
    assert not any("deployment" in job for job in rules.stage_by_id(doc, "PlanProd")["jobs"])
    steps = _prod_steps(doc)
    (download,) = [s for s in steps if (s.get("inputs") or {}).get("artifact") == "prod-plan"]
    up = next(s for s in steps if "pulumi up" in rules.step_script(s))
    assert download["inputs"]["targetPath"] + "/plan.json" in rules.step_script(up)
    assert "--plan" in rules.step_script(up) and "--yes" in rules.step_script(up)
    results = rules.simulate(doc, rules.RUNS["push to main"], fail={"PlanProd"})
    assert results["DeployProd"] == "Skipped", "no plan, no prod deploy"


@pytest.mark.parametrize("breakage,problem", [
    (lambda doc: _plan_step(doc)["inputs"].update(
        inlineScript=_plan_step(doc)["inputs"]["inlineScript"].replace("--save-plan", "--json")),
     "PlanProd does not run `pulumi preview --stack prod --save-plan`"),
    (lambda doc: _plan_step(doc)["inputs"].update(azureSubscription="${{ parameters.prodServiceConnection }}"),
     "PlanProd does not run as the read-only prod preview identity"),
    (lambda doc: _plan_step(doc)["inputs"].update(
        inlineScript=_plan_step(doc)["inputs"]["inlineScript"].replace("##vso[task.uploadsummary]", "cat ")),
     "PlanProd does not show the plan on the run summary"),
    (lambda doc: [s["inputs"].update(inlineScript=s["inputs"]["inlineScript"].replace(
        '--plan "$(Agent.TempDirectory)/prod-plan/plan.json" ', "")) for s in _prod_steps(doc)
        if "pulumi up --stack prod --plan" in rules.step_script(s)],
     "DeployProd's deployment job does not run pulumi up --stack prod --plan <the approved plan> --yes"),
    (lambda doc: rules.stage_by_id(doc, "DeployProd")["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"].insert(
        3, {"script": "pulumi preview --stack prod"}),
     "DeployProd previews after the approval"),
])
def test_an_unapproved_prod_update_is_rejected(bad, breakage, problem):
    breakage(bad)
    assert any(p.startswith(problem) for p in rules.check_rules(bad)), rules.check_rules(bad)


def test_previews_default_to_read_only_connections(doc):
    defaults = {p["name"]: p["default"] for p in doc["parameters"]}
    assert defaults["devPreviewServiceConnection"] != defaults["devServiceConnection"]
    assert defaults["prodPreviewServiceConnection"] != defaults["prodServiceConnection"]


@pytest.mark.parametrize("breakage, problem", [
    (lambda t: t.replace('"$PULUMI_BACKEND_URL_PROD"', '"$PULUMI_BACKEND_URL"'), "pulumi login to the shared"),
    (lambda t: t.replace('"$PULUMI_BACKEND_URL_PROD"', '"$PULUMI_BACKEND_URL_DEV"'),
     "pulumi --stack prod without logging in to PULUMI_BACKEND_URL_PROD"),
    (lambda t: re.sub(r'pulumi login "\$PULUMI_BACKEND_URL_DEV"\n', "", t),
     "pulumi --stack dev without logging in to PULUMI_BACKEND_URL_DEV"),
], ids=["shared-backend", "prod-on-dev-state", "no-login"])
def test_each_stack_uses_its_own_state_container(doc, breakage, problem):
    assert rules.check_state(doc) == []
    broken = rules.yaml.safe_load(breakage(rules.PIPELINE.read_text()))
    assert any(problem in p for p in rules.check_state(broken)), rules.check_state(broken)


@pytest.mark.parametrize("breakage, problem", [
    (lambda t: t.replace("timeoutInMinutes: 285", "timeoutInMinutes: 180"), "DeployDev: its steps' worst case is 270"),
    (lambda t: t.replace("--ready-timeout 1800 --run-timeout 2400", ""),
     "DeployDev: step 'Smoke (endpoints answer, watcher jobs run once)' waits 90"),
    (lambda t: t.replace("--timeout-minutes 60", "--timeout-minutes 90"), "DeployDev: step 'Train the first champions"),
    (lambda t: t.replace("                  timeoutInMinutes: 60\n", "", 1), "DeployProd: step 'Promote each"),
    (lambda t: t.replace("timeoutInMinutes: 50", "timeoutInMinutes: 30", 1),
     "DeployDev: step 'pulumi up --stack dev' waits 45 minutes"),
], ids=["job-timeout", "smoke-waits", "bootstrap-waits", "step-without-timeout", "endpoint-wait"])
def test_each_deploy_fits_its_timeout(doc, breakage, problem):
    assert rules.check_budget(doc) == []
    broken = rules.yaml.safe_load(breakage(rules.PIPELINE.read_text()))
    assert any(p.startswith(problem) for p in rules.check_budget(broken)), rules.check_budget(broken)
