"""What the tests know about azure-pipelines.yml: schema validation with the schema's known quirks allowed
for, a model of how Azure Pipelines decides which stages run, and the promotion rules of this project.

Schema: the official Azure Pipelines schema (Microsoft's service-schema.json) as vendored in the
check-jsonschema package; never fetched. It is validated the way check-jsonschema's own
`check-azure-pipelines` hook does (compile-time `${{ }}` expressions unnested by its azure-pipelines
data transform), plus these allowances, each for a documented defect of the schema and nothing more:

- ``yaml-booleans``: the schema's ``#/definitions/boolean`` only admits the *strings* "true", "false",
  "yes", ... so ``persistCredentials: true`` or ``trigger: {batch: true}`` (how Microsoft's YAML reference
  writes them, and what the service accepts) fail. Real YAML booleans are admitted there as well.
  Upstream: microsoft/azure-pipelines-vscode#446, python-jsonschema/check-jsonschema#42 and #238.
- ``string-typed-scalars``: some keys are typed string (to admit macros) although their documented
  values are integers or booleans: ``timeoutInMinutes``, ``cancelTimeoutInMinutes``,
  ``retryCountOnTaskFailure``, and the checkout step's ``fetchDepth``, ``clean``, ``fetchTags``, ``lfs``,
  ``persistCredentials``, ``submodules``; so ``timeoutInMinutes: 60`` or ``persistCredentials: true``
  fail (a ``task`` step's ``timeoutInMinutes`` alone is typed integer, and stays one). A YAML integer or boolean under exactly those keys (never inside task ``inputs``, which have
  real integer and boolean types) is read as its string ("60", "true"), as the service reads it.
- ``input-aliases``: task inputs list their documented aliases in a non-standard ``aliases`` keyword
  (e.g. ``artifact`` for DownloadPipelineArtifact@2's ``artifactName``) that JSON Schema validators
  ignore, so ``additionalProperties: false`` rejects the alias. An alias is renamed to its canonical
  input name, only for the task whose schema declares it, before validation.

Not allowed for (the validation is stricter than the service there): the schema's non-standard
``ignoreCase`` keyword is ignored, so task names and keys must be written in their canonical case. No
extension task is used (the Pulumi CLI is installed by infra/pipeline/setup.sh rather than through the
Pulumi@1 marketplace task), so no allowance for unknown tasks exists: any task the schema does not
know is an error.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from check_jsonschema.transforms.azure_pipelines import azure_main

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "azure-pipelines.yml"
CI_RUN = ROOT / ".ci" / "run"

DEV_ENV = "lakehouse-mlops-dev"
PROD_ENV = "lakehouse-mlops-prod"
TASK_STEP_KEYS = {"task"}  # a task step's timeoutInMinutes is typed integer (a script step's: string)
STRING_TYPED_KEYS = {"timeoutInMinutes", "cancelTimeoutInMinutes", "retryCountOnTaskFailure",
                     "fetchDepth", "clean", "fetchTags", "lfs", "persistCredentials", "submodules"}


# --------------------------------------------------------------------------------------- schema
def schema_path() -> Path:
    return Path(str(resources.files("check_jsonschema.builtin_schemas.vendor") / "azure-pipelines.json"))


@lru_cache(maxsize=1)
def raw_schema() -> dict:
    return json.loads(schema_path().read_text())


def load_pipeline(path: Path = PIPELINE) -> dict:
    return yaml.safe_load(path.read_text())


@dataclass(frozen=True)
class Allowance:
    name: str
    why: str
    schema: Callable[[dict], None] | None = None
    data: Callable[[Any, dict], Any] | None = None


def _allow_yaml_booleans(schema: dict) -> None:
    boolean = schema["definitions"]["boolean"]
    if "anyOf" not in boolean:
        raise AssertionError("schema changed: #/definitions/boolean has no anyOf; revisit the allowance")
    boolean["anyOf"].append({"type": "boolean"})


def _walk(node: Any, in_inputs: bool = False) -> Iterator[tuple[dict, bool]]:
    if isinstance(node, dict):
        yield node, in_inputs
        for key, value in node.items():
            yield from _walk(value, in_inputs or key == "inputs")
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, in_inputs)


def _allow_string_typed_scalars(data: Any, schema: dict) -> Any:
    for mapping, in_inputs in _walk(data):
        if in_inputs:
            continue
        keys = STRING_TYPED_KEYS & set(mapping)
        if TASK_STEP_KEYS & set(mapping):
            keys -= {"timeoutInMinutes"}
        for key in keys:
            value = mapping[key]
            if isinstance(value, bool):
                mapping[key] = "true" if value else "false"
            elif isinstance(value, int):
                mapping[key] = str(value)
    return data


def _input_aliases(schema: dict) -> dict[str, dict[str, str]]:
    """task name -> {alias: canonical input name}, from the schema's `aliases` keyword."""
    result: dict[str, dict[str, str]] = {}
    for branch in schema["definitions"]["task"]["anyOf"]:
        pattern = branch["properties"]["task"].get("pattern", "")
        name = pattern.strip("^$")
        inputs = branch["properties"].get("inputs", {}).get("properties", {})
        for canonical, spec in inputs.items():
            for alias in spec.get("aliases", []):
                result.setdefault(name, {})[alias] = canonical
    return result


def _allow_input_aliases(data: Any, schema: dict) -> Any:
    aliases = _input_aliases(schema)
    for mapping, _ in _walk(data):
        if isinstance(mapping.get("task"), str) and isinstance(mapping.get("inputs"), dict):
            renames = aliases.get(mapping["task"], {})
            mapping["inputs"] = {renames.get(k, k): v for k, v in mapping["inputs"].items()}
    return data


ALLOWANCES = (
    Allowance("yaml-booleans", "#/definitions/boolean admits only strings", schema=_allow_yaml_booleans),
    Allowance("string-typed-scalars", "integer/boolean keys typed string", data=_allow_string_typed_scalars),
    Allowance("input-aliases", "task input aliases use a non-standard keyword", data=_allow_input_aliases),
)


def build_schema(allowances=ALLOWANCES) -> dict:
    schema = copy.deepcopy(raw_schema())
    for allowance in allowances:
        if allowance.schema:
            allowance.schema(schema)
    return schema


@lru_cache(maxsize=4)
def _validator(names: tuple[str, ...]) -> jsonschema.Draft7Validator:
    chosen = [a for a in ALLOWANCES if a.name in names]
    return jsonschema.Draft7Validator(build_schema(chosen))


def prepare(doc: dict, allowances=ALLOWANCES) -> dict:
    """The document as validated: compile-time expressions unnested, data allowances applied."""
    data = azure_main(copy.deepcopy(doc))
    for allowance in allowances:
        if allowance.data:
            data = allowance.data(data, raw_schema())
    return data


def schema_errors(doc: dict, allowances=ALLOWANCES) -> list[jsonschema.ValidationError]:
    validator = _validator(tuple(a.name for a in allowances))
    return list(validator.iter_errors(prepare(doc, allowances)))


def all_messages(errors: list[jsonschema.ValidationError]) -> list[str]:
    """Every message in the error tree (anyOf/oneOf failures keep their branches' errors in .context)."""
    out = []
    stack = list(errors)
    while stack:
        error = stack.pop()
        out.append(f"{error.json_path}: {error.message}")
        stack.extend(error.context)
    return out


def explain(errors: list[jsonschema.ValidationError]) -> str:
    """The deepest error of each failure: the useful line in a sea of anyOf alternatives."""
    lines = []
    for error in errors:
        best = jsonschema.exceptions.best_match([error], key=lambda e: -len(e.absolute_path))
        deepest = max(_leaves(error), key=lambda e: len(e.absolute_path), default=best)
        lines.append(f"{deepest.json_path}: {deepest.message[:300]}")
    return "\n".join(lines)


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    if not error.context:
        yield error
    for child in error.context:
        yield from _leaves(child)


# ---------------------------------------------------------------------------- stages and jobs
def stages(doc: dict) -> list[dict]:
    return doc.get("stages") or []


def stage_by_id(doc: dict, stage_id: str) -> dict | None:
    return next((s for s in stages(doc) if s.get("stage") == stage_id), None)


def dependencies(doc: dict, stage: dict) -> list[str]:
    """A stage's dependencies; no `dependsOn` means the previous stage in the file (Azure semantics)."""
    if "dependsOn" not in stage:
        ids = [s.get("stage") for s in stages(doc)]
        index = ids.index(stage.get("stage"))
        return [ids[index - 1]] if index > 0 else []
    value = stage["dependsOn"]
    if value in (None, "", []):
        return []
    return [value] if isinstance(value, str) else list(value)


def depends_on(doc: dict, stage: dict, target: str) -> bool:
    """Whether ``stage`` runs only after ``target``: a dependency, directly or through other stages."""
    seen: set[str] = set()
    todo = list(dependencies(doc, stage))
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name in seen or stage_by_id(doc, name) is None:
            continue
        seen.add(name)
        todo += dependencies(doc, stage_by_id(doc, name))
    return False


def job_steps(job: dict) -> list[dict]:
    """Steps of a job, or of every lifecycle hook of a deployment strategy, in execution order."""
    if "steps" in job:
        return list(job["steps"] or [])
    steps: list[dict] = []
    for strategy in (job.get("strategy") or {}).values():
        if not isinstance(strategy, dict):
            continue
        for hook in ("preDeploy", "deploy", "routeTraffic", "postRouteTraffic"):
            steps += (strategy.get(hook) or {}).get("steps") or []
        for outcome in ("failure", "success"):
            steps += ((strategy.get("on") or {}).get(outcome) or {}).get("steps") or []
    return steps


def step_script(step: dict) -> str:
    """The shell text a step runs (script/bash/pwsh/powershell, or an AzureCLI inline script)."""
    for key in ("script", "bash", "pwsh", "powershell"):
        if key in step:
            text = str(step[key])
            break
    else:
        inputs = step.get("inputs") or {}
        text = str(inputs.get("inlineScript") or inputs.get("script") or "")
    return re.sub(r"[ \t]+", " ", text.replace("\\\n", " "))


def stage_steps(stage: dict) -> list[tuple[dict, dict]]:
    return [(job, step) for job in stage.get("jobs") or [] for step in job_steps(job)]


# Commands that change a workspace, a stack or the repository: only deployment jobs may run them.
MUTATING = {
    "pulumi up": re.compile(r"\bpulumi\s+(up|update|destroy|import|refresh\b.*--yes)\b"),
    "mlops promote": re.compile(r"\bmlops\b.*\b(promote|rollback)\b"),
    "git push": re.compile(r"\bgit\s+push\b"),
}


def mutating_commands(stage: dict) -> list[str]:
    found = []
    for _, step in stage_steps(stage):
        text = step_script(step)
        found += [name for name, pattern in MUTATING.items() if pattern.search(text)]
    return found


# ------------------------------------------------------------------------------ conditions
TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w.]*)"
                   r"|(?P<punct>[(),\[\]]))")


class ConditionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(f"cannot parse condition at {text[pos:]!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _at(tokens: list[tuple[str, str]], i: int) -> tuple[str, str]:
    if i >= len(tokens):
        raise ConditionError("condition ends too early (unbalanced parentheses?)")
    return tokens[i]


def _parse(tokens: list[tuple[str, str]], i: int = 0):
    kind, value = _at(tokens, i)
    if kind == "str":
        return ("lit", value[1:-1].replace("''", "'")), i + 1
    if kind == "num":
        return ("lit", float(value)), i + 1
    if kind != "name":
        raise ConditionError(f"unexpected {value!r}")
    if value.lower() in ("true", "false"):
        return ("lit", value.lower() == "true"), i + 1
    if i + 1 < len(tokens) and tokens[i + 1] == ("punct", "["):
        key, j = _parse(tokens, i + 2)
        if _at(tokens, j) != ("punct", "]"):
            raise ConditionError("expected ]")
        return ("index", value, key[1]), j + 1
    if i + 1 < len(tokens) and tokens[i + 1] == ("punct", "("):
        args, j = [], i + 2
        if _at(tokens, j) != ("punct", ")"):
            while True:
                arg, j = _parse(tokens, j)
                args.append(arg)
                if _at(tokens, j) == ("punct", ","):
                    j += 1
                    continue
                break
        if _at(tokens, j) != ("punct", ")"):
            raise ConditionError(f"expected ) after arguments of {value}")
        return ("call", value.lower(), args), j + 1
    return ("ref", value), i + 1


def parse_condition(text: str):
    tokens = _tokens(text)
    tree, end = _parse(tokens)
    if end != len(tokens):
        raise ConditionError(f"trailing text in condition {text!r}")
    return tree


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def evaluate(tree, variables: dict[str, str], dep_results: list[str]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "index":
        if tree[1].lower() != "variables":
            raise ConditionError(f"unsupported indexer {tree[1]}")
        return variables.get(tree[2], "")
    if kind == "ref":
        name = tree[1]
        if name.lower().startswith("variables."):
            return variables.get(name.split(".", 1)[1], "")
        raise ConditionError(f"unsupported reference {name}")
    name, args = tree[1], tree[2]
    ok = {"Succeeded", "SucceededWithIssues"}
    if name == "succeeded":
        return all(r in ok for r in dep_results)
    if name == "failed":
        return any(r == "Failed" for r in dep_results)
    if name == "succeededorfailed":
        return all(r in ok | {"Failed"} for r in dep_results)
    if name == "always":
        return True
    if name == "canceled":
        return False
    values = [evaluate(a, variables, dep_results) for a in args]
    if name == "and":
        return all(bool(v) for v in values)
    if name == "or":
        return any(bool(v) for v in values)
    if name == "not":
        return not bool(values[0])
    if name == "eq":
        return _norm(values[0]) == _norm(values[1])
    if name == "ne":
        return _norm(values[0]) != _norm(values[1])
    if name == "in":
        return _norm(values[0]) in [_norm(v) for v in values[1:]]
    if name == "notin":
        return _norm(values[0]) not in [_norm(v) for v in values[1:]]
    if name == "startswith":
        return str(_norm(values[0])).startswith(str(_norm(values[1])))
    if name == "endswith":
        return str(_norm(values[0])).endswith(str(_norm(values[1])))
    if name == "contains":
        return str(_norm(values[1])) in str(_norm(values[0]))
    raise ConditionError(f"unsupported function {name}()")


RUNS = {
    "pull request into main": {"Build.Reason": "PullRequest", "Build.SourceBranch": "refs/pull/42/merge",
                               "Build.SourceBranchName": "merge",
                               "System.PullRequest.TargetBranch": "refs/heads/main"},
    "push to main": {"Build.Reason": "IndividualCI", "Build.SourceBranch": "refs/heads/main",
                     "Build.SourceBranchName": "main"},
    "batched push to main": {"Build.Reason": "BatchedCI", "Build.SourceBranch": "refs/heads/main",
                             "Build.SourceBranchName": "main"},
    "manual run of main": {"Build.Reason": "Manual", "Build.SourceBranch": "refs/heads/main",
                           "Build.SourceBranchName": "main"},
    "push to a feature branch": {"Build.Reason": "IndividualCI", "Build.SourceBranch": "refs/heads/feature/x",
                                 "Build.SourceBranchName": "x"},
    "manual run of a feature branch": {"Build.Reason": "Manual", "Build.SourceBranch": "refs/heads/feature/x",
                                       "Build.SourceBranchName": "x"},
    "push to a branch named like main": {"Build.Reason": "IndividualCI",
                                         "Build.SourceBranch": "refs/heads/users/me/main",
                                         "Build.SourceBranchName": "main"},
}


def simulate(doc: dict, variables: dict[str, str], fail: set[str] = frozenset()) -> dict[str, str]:
    """Result of each stage for a run with these predefined variables, as Azure Pipelines decides it:
    a stage runs when its condition (default `succeeded()`) is true over its dependencies' results; a
    stage that runs succeeds unless listed in `fail`; one that does not run is Skipped."""
    results: dict[str, str] = {}
    pending = list(stages(doc))
    while pending:
        progressed = False
        for stage in list(pending):
            deps = dependencies(doc, stage)
            if any(d not in results for d in deps):
                continue
            condition = stage.get("condition") or "succeeded()"
            runs = bool(evaluate(parse_condition(str(condition)), variables, [results[d] for d in deps]))
            results[stage["stage"]] = ("Failed" if stage["stage"] in fail else "Succeeded") if runs else "Skipped"
            pending.remove(stage)
            progressed = True
        if not progressed:
            raise ConditionError(f"dependency cycle or unknown stage among {[s.get('stage') for s in pending]}")
    return results


def ran(results: dict[str, str]) -> set[str]:
    return {name for name, result in results.items() if result != "Skipped"}


# ---------------------------------------------------------------------------- promotion rules
def readme_test_command() -> str:
    """The README's test command, as .ci/run runs it (the line after its 'verbatim' comment)."""
    lines = CI_RUN.read_text().splitlines()
    for i, line in enumerate(lines):
        if "test command, verbatim" in line:
            return lines[i + 1].strip()
    raise AssertionError(".ci/run no longer marks the README's test command")


def deploying_stages(doc: dict) -> set[str]:
    """Stages that deploy: any deployment job, or any command that changes a stack or the repo."""
    return {s["stage"] for s in stages(doc)
            if any("deployment" in job for job in s.get("jobs") or []) or mutating_commands(s)}


def _index(steps: list[dict], pattern: str) -> int | None:
    regex = re.compile(pattern)
    return next((i for i, step in enumerate(steps) if regex.search(step_script(step))), None)


def _deployment_jobs(stage: dict | None) -> list[dict]:
    return [job for job in (stage or {}).get("jobs") or [] if "deployment" in job]


def _environment(job: dict) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def check_build(doc: dict) -> list[str]:
    stage = stage_by_id(doc, "Build")
    if stage is None:
        return ["no Build stage"]
    problems = []
    scripts = [step_script(step) for _, step in stage_steps(stage)]
    command = readme_test_command()
    if not any(line.strip() == command for text in scripts for line in text.splitlines()):
        problems.append(f"Build does not run the README test command verbatim: {command!r}")
    if not any(re.search(r"\buv run (--locked )?ruff check \.(\s|$)", text) for text in scripts):
        problems.append("Build does not lint with `uv run ruff check .`")
    if not any(re.search(r"\buv build\b.*--wheel", text) for text in scripts):
        problems.append("Build does not build the wheel with `uv build --wheel`")
    publishes = [step for _, step in stage_steps(stage) if str(step.get("task", "")).startswith("PublishPipelineArtifact@")
                 or "publish" in step]
    if not any(str((s.get("inputs") or {}).get("targetPath", s.get("publish", ""))).rstrip("/") == "dist"
               for s in publishes):
        problems.append("Build does not publish dist/ as a pipeline artifact")
    if dependencies(doc, stage):
        problems.append("Build must be the first stage (it depends on nothing)")
    return problems


def check_preview(doc: dict) -> list[str]:
    stage = stage_by_id(doc, "Preview")
    if stage is None:
        return ["no Preview stage"]
    problems = []
    steps = [step for _, step in stage_steps(stage)]
    for stack in ("dev", "prod"):
        at = _index(steps, rf"\bpulumi preview\b(?=.*--stack {stack}\b)(?=.*--diff)(?=.*--policy-pack infra/policy)")
        if at is None:
            problems.append(f"Preview does not run `pulumi preview --diff --policy-pack infra/policy` for {stack}")
    post = _index(steps, r"infra/pipeline/pr_comment\.py")
    if post is None:
        problems.append("Preview does not post the preview to the pull request")
    elif "System.AccessToken" not in json.dumps(steps[post].get("env", {})):
        problems.append("the PR comment step does not get System.AccessToken")
    if "Preview" in deploying_stages(doc):
        problems.append(f"Preview deploys: {mutating_commands(stage) or 'it has a deployment job'}")
    return problems


def _deploy_stage(doc: dict, stage_id: str, after: str, env: str) -> tuple[list[str], list[dict] | None]:
    """What both deploy stages must be: present, after `after`, deployment jobs bound to `env`. Returns the
    problems and the steps of its deployment jobs (None when there is no such stage)."""
    stage = stage_by_id(doc, stage_id)
    if stage is None:
        return [f"no {stage_id} stage"], None
    problems = []
    if not depends_on(doc, stage, after):
        problems.append(f"{stage_id} does not depend on {after}")
    jobs = _deployment_jobs(stage)
    if not jobs or any(_environment(job) != env for job in jobs):
        problems.append(f"{stage_id}'s deployment jobs are not bound to environment {env}")
    return problems, [step for job in jobs for step in job_steps(job)]


def _downloads_artifact(step: dict) -> bool:
    return str(step.get("task", "")).startswith("DownloadPipelineArtifact@")


def check_deploy_dev(doc: dict) -> list[str]:
    problems, steps = _deploy_stage(doc, "DeployDev", after="Build", env=DEV_ENV)
    if steps is None:
        return problems
    up = _index(steps, r"\bpulumi up\b(?=.*--stack dev\b)(?=.*--yes)")
    smoke = _index(steps, r"infra/pipeline/smoke\.py(?=.*--stack dev\b)")
    wheel = next((i for i, s in enumerate(steps) if _downloads_artifact(s)
                  and str((s.get("inputs") or {}).get("targetPath", "")).endswith("/dist")), None)
    if up is None:
        problems.append("DeployDev's deployment job does not run `pulumi up --stack dev --yes`")
    if smoke is None or (up is not None and smoke < up):
        problems.append("DeployDev does not run the smoke test after `pulumi up`")
    if wheel is None or (up is not None and wheel > up):
        problems.append("DeployDev does not download the wheel into dist/ before `pulumi up`")
    return problems


def check_deploy_prod(doc: dict) -> list[str]:
    problems, steps = _deploy_stage(doc, "DeployProd", after="DeployDev", env=PROD_ENV)
    if steps is None:
        return problems
    if "PlanProd" not in dependencies(doc, stage_by_id(doc, "DeployProd")):
        problems.append("DeployProd does not depend on PlanProd (the plan the approvers saw)")
    if _index(steps, r"\bpulumi preview\b") is not None:
        problems.append("DeployProd previews after the approval: the approved plan comes from PlanProd")
    order = [
        ("the wheel download", next((i for i, s in enumerate(steps) if _downloads_artifact(s)
                                     and (s.get("inputs") or {}).get("artifact") == "wheel"), None)),
        ("the plan download", next((i for i, s in enumerate(steps) if _downloads_artifact(s)
                                    and (s.get("inputs") or {}).get("artifact") == PLAN_ARTIFACT), None)),
        ("pulumi up --stack prod --plan <the approved plan> --yes",
         _index(steps, r"\bpulumi up\b(?=.*--stack prod\b)(?=.*--plan \S*prod-plan/plan\.json)(?=.*--yes)")),
        ("mlops promote --from dev --to prod",
         _index(steps, r"\bmlops\b.*--backend databricks.*\bpromote\b(?=.*--from dev\b)(?=.*--to prod\b)")),
        ("the release tag", _index(steps, r"\bgit tag\b")),
    ]
    for name, at in order:
        if at is None:
            problems.append(f"DeployProd's deployment job does not run {name}")
    found = [(name, at) for name, at in order if at is not None]
    for (first, a), (then, b) in itertools.pairwise(found):
        if a > b:
            problems.append(f"DeployProd runs {then} before {first}")
    return problems


PLAN_ARTIFACT = "prod-plan"


def check_plan_prod(doc: dict) -> list[str]:
    """Before the approval, and without deploying: the prod preview saved as a plan, shown on the run summary,
    published for DeployProd, with the read-only prod preview identity."""
    stage = stage_by_id(doc, "PlanProd")
    if stage is None:
        return ["no PlanProd stage"]
    problems = []
    if "DeployDev" not in dependencies(doc, stage):
        problems.append("PlanProd does not depend on DeployDev")
    if "PlanProd" in deploying_stages(doc):
        problems.append("PlanProd deploys")
    steps = [step for _, step in stage_steps(stage)]
    plan = _index(steps, r"\bpulumi preview\b(?=.*--stack prod\b)(?=.*--policy-pack infra/policy)")
    if plan is None or "--save-plan" not in step_script(steps[plan]):
        problems.append("PlanProd does not run `pulumi preview --stack prod --save-plan` with the policy pack")
    elif "prodPreviewServiceConnection" not in str((steps[plan].get("inputs") or {}).get("azureSubscription")):
        problems.append("PlanProd does not run as the read-only prod preview identity")
    if _index(steps, r"##vso\[task\.uploadsummary\]") is None:
        problems.append("PlanProd does not show the plan on the run summary")
    if not any(str(s.get("task", "")).startswith("PublishPipelineArtifact@")
               and (s.get("inputs") or {}).get("artifact") == PLAN_ARTIFACT for s in steps):
        problems.append(f"PlanProd does not publish the plan as artifact {PLAN_ARTIFACT}")
    return problems


def check_placement(doc: dict) -> list[str]:
    """Commands that change stacks, models or the repository run only inside deployment jobs."""
    problems = []
    for stage in stages(doc):
        for job in stage.get("jobs") or []:
            if "deployment" in job and _environment(job):
                continue
            for step in job_steps(job):
                for name, pattern in MUTATING.items():
                    if pattern.search(step_script(step)):
                        problems.append(f"{stage.get('stage')}/{job.get('job') or job.get('deployment')} runs "
                                        f"`{name}` outside a deployment job bound to an environment")
    return problems


def check_runs(doc: dict) -> list[str]:
    """Which stages run for each kind of run: deploys only from main, never for pull requests."""
    problems = []
    deploying = deploying_stages(doc)
    for run, variables in RUNS.items():
        results = simulate(doc, variables)
        started = ran(results)
        from_main = variables["Build.SourceBranch"] == "refs/heads/main"
        if variables["Build.Reason"] == "PullRequest" or not from_main:
            if started & deploying:
                problems.append(f"{run}: deploying stages run: {sorted(started & deploying)}")
        else:
            missing = {"DeployDev", "DeployProd"} - started
            if missing:
                problems.append(f"{run}: {sorted(missing)} do not run")
        if "Build" not in started:
            problems.append(f"{run}: Build does not run")
        if variables["Build.Reason"] == "PullRequest" and "Preview" not in started:
            problems.append(f"{run}: Preview does not run")
    main = RUNS["push to main"]
    for failing, must_not_run in (("Build", {"DeployDev", "DeployProd"}), ("DeployDev", {"DeployProd"})):
        started = ran(simulate(doc, main, fail={failing}))
        if started & must_not_run:
            problems.append(f"push to main with {failing} failing: {sorted(started & must_not_run)} still run")
    return problems


STACK_COMMAND = re.compile(r"\bpulumi\s+(?:up|update|preview|destroy|refresh|import|stack\s+output)\b[^\n]*?--stack\s+(\w+)")
LOGIN = re.compile(r'\bpulumi\s+login\s+"?\$\{?PULUMI_BACKEND_URL_(\w+?)\}?"?(?:\s|$)')


def check_state(doc: dict) -> list[str]:
    """One state container per stack: every script that runs ``pulumi ... --stack S`` logs in first, in that script,
    to ``$PULUMI_BACKEND_URL_<S>`` (a login persists between tasks, so relying on an earlier task's login could read
    or write another stack's state), and never to a backend shared by the stacks."""
    problems = []
    for stage in stages(doc):
        for _, step in stage_steps(stage):
            text = step_script(step)
            if re.search(r"\bpulumi\s+login\s+\S*PULUMI_BACKEND_URL(?![_\w])", text):
                problems.append(f"{stage.get('stage')}: pulumi login to the shared PULUMI_BACKEND_URL")
            for command in STACK_COMMAND.finditer(text):
                logins = [m for m in LOGIN.finditer(text) if m.start() < command.start()]
                stack = command.group(1)
                if not logins or logins[-1].group(1).lower() != stack.lower():
                    problems.append(f"{stage.get('stage')}: pulumi --stack {stack} without logging in to "
                                    f"PULUMI_BACKEND_URL_{stack.upper()} first")
    return problems


CHECKOUT_MARGIN_MINUTES = 15  # checkout and `download: none` steps, which carry no timeout of their own


def _minutes(value) -> int | None:
    return None if value is None else int(value)


def _flag(text: str, name: str) -> float | None:
    found = re.search(rf"{re.escape(name)}[ =](\d+(?:\.\d+)?)", text)
    return float(found.group(1)) if found else None


def _endpoint_ready_minutes() -> int:
    from infra.components.serving import ENDPOINT_READY_TIMEOUT

    return int(ENDPOINT_READY_TIMEOUT.removesuffix("m"))


def check_budget(doc: dict) -> list[str]:
    """Every deploy job's worst case fits its timeout: each of its task and script steps carries a
    ``timeoutInMinutes``, their sum plus the checkout margin is within the job's, and the waits inside a step (the
    first champions' ``--timeout-minutes``, the smoke test's ``--ready-timeout`` plus ``--run-timeout``) are within
    that step's. Otherwise a slow but healthy release is cancelled midway by its own job timeout."""
    problems = []
    for stage_id in ("DeployDev", "DeployProd"):
        stage = stage_by_id(doc, stage_id) or {}
        for job in stage.get("jobs") or []:
            job_minutes = _minutes(job.get("timeoutInMinutes"))
            total = 0
            for step in job_steps(job):
                if "checkout" in step or "download" in step:
                    continue
                name = step.get("displayName", "?")
                minutes = _minutes(step.get("timeoutInMinutes"))
                if minutes is None:
                    problems.append(f"{stage_id}: step '{name}' has no timeoutInMinutes")
                    continue
                total += minutes
                text = step_script(step)
                waits = []
                if "bootstrap.py" in text:
                    waits.append(_flag(text, "--timeout-minutes") or 60)
                if re.search(r"\bpulumi\s+up\b", text):  # the provider's waits for endpoints, bounded by the program
                    waits.append(_endpoint_ready_minutes() + 5)
                if "smoke.py" in text:
                    waits.append(((_flag(text, "--ready-timeout") or 1800) + (_flag(text, "--run-timeout") or 3600))
                                 / 60)
                if any(w >= minutes for w in waits):
                    problems.append(f"{stage_id}: step '{name}' waits {max(waits):.0f} minutes within a "
                                    f"{minutes}-minute step timeout")
            if job_minutes is None or total + CHECKOUT_MARGIN_MINUTES > job_minutes:
                problems.append(f"{stage_id}: its steps' worst case is {total} minutes (+{CHECKOUT_MARGIN_MINUTES} "
                                f"checkout), over the job's timeoutInMinutes {job_minutes}")
    return problems


RULES = {
    "build": check_build,
    "budget": check_budget,
    "state": check_state,
    "preview": check_preview,
    "deploy-dev": check_deploy_dev,
    "plan-prod": check_plan_prod,
    "deploy-prod": check_deploy_prod,
    "placement": check_placement,
    "runs": check_runs,
}


def check_rules(doc: dict) -> list[str]:
    return [problem for rule in RULES.values() for problem in rule(doc)]
