"""``mlops doctor``: a read-only preflight of a real workspace before a stack's first ``pulumi up``.

Each check asks the workspace one or two read-only questions through databricks-sdk (every request is a GET)
and comes back as one :class:`CheckResult`: pass, warn, fail or skip, what was found, and the fix when it
fails. The checks, in order, and the Databricks documentation each rests on:

1. **identity**: ``current_user.me()`` (``GET /api/2.0/preview/scim/v2/Me``): who the deploy would act as.
2. **metastore**: ``metastores.current()`` (``GET /api/2.1/unity-catalog/current-metastore-assignment``):
   a Unity Catalog metastore is assigned to the workspace; without one the workspace answers 404
   ("No metastore assigned for the current workspace").
   https://docs.databricks.com/api/uc-metastores/v1/get-current-metastore-assignment.md
3. **catalog**: ``catalogs.get`` then ``grants.get_effective`` on the catalog (``GET
   /api/2.1/unity-catalog/effective-permissions/CATALOG/<name>``, which includes privileges inherited from the
   metastore). A present catalog needs its owner, or USE CATALOG + CREATE SCHEMA (ALL PRIVILEGES covers both)
   + MANAGE (the stack grants USE CATALOG on it, and only the owner, MANAGE holders or a metastore admin may
   grant). An absent catalog needs CREATE CATALOG on the metastore (effective permissions on the
   ``METASTORE`` securable, full name = metastore id) or the metastore admin (the metastore's owner, from
   ``metastores.summary()``, who holds CREATE CATALOG by default).
   https://docs.databricks.com/api/uc-grants/v1/get-effective-permissions.md
   https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/manage-privileges/
   https://docs.databricks.com/data-governance/unity-catalog/manage-privileges/admin-privileges.html
4. **warehouse**: ``warehouses.get(warehouseId)`` (``GET /api/2.0/sql/warehouses/<id>``).
   https://docs.databricks.com/api/warehouses/v1/get-warehouse.md
5. **run-as**: ``service_principals.list(filter='applicationId eq "<id>"')`` (SCIM, ``GET
   /api/2.0/preview/scim/v2/ServicePrincipals``): the principal is in the workspace and ``active``. Using it
   as a job's run-as needs the account-level *Service Principal User* role (the *Manager* role does not
   include it). The one read-only way to see that role from a workspace is the rule-set proxy (``GET
   /api/2.0/preview/accounts/access-control/rule-sets`` with ``name=accounts/<account id>/servicePrincipals/
   <application id>/ruleSets/default``, role ``roles/servicePrincipal.user``); it needs the account id, which
   databricks-sdk reads from the host's ``/.well-known/databricks-config`` (or ``DATABRICKS_ACCOUNT_ID``).
   Without it, or when the rule set cannot be read, the line is a warn that says what was not checked.
   https://docs.databricks.com/api/scim/v1/list-service-principals.md
   https://docs.databricks.com/security/auth/access-control/service-principal-acl.html
   https://docs.databricks.com/api/access-management/v1/get-rule-set-proxy.md
6. **model serving**: ``serving_endpoints.list()`` (``GET /api/2.0/serving-endpoints``) answers (a workspace
   without Model Serving answers FEATURE_DISABLED).
   **serverless jobs**: Databricks documents no read-only API that says whether serverless compute for jobs
   is available: "Serverless compute is available by default in most workspaces and does not require
   enablement. Workspaces that have Unity Catalog enabled and are in a supported region automatically have
   access" (https://learn.microsoft.com/en-us/azure/Databricks/compute/serverless). So the line fails without a
   metastore and otherwise is a warn saying that only the Unity Catalog requirement was checked.
7. **source models** (a stack promoted from another, e.g. prod from dev): ``registered_models.get`` of each
   model ``mlops promote`` copies (``GET /api/2.1/unity-catalog/models/<full name>``): missing is a warn (not
   trained yet), permission denied a fail.

8. **owner group** (issue 19's identity model, docs/deploy.md "Identities"): the stack's ``grants.owner`` group
   owns the catalog, schemas, volume, tables and registered models it declares, and the provider hands ownership to
   it right after creating each object; a deploy identity outside that group loses its rights on the catalog it
   just made (the next create, a schema, fails with PERMISSION_DENIED). So the caller must be in it (SCIM ``Me``
   groups), and so must the run-as principal (SCIM ``ServicePrincipals`` groups): setting a model alias needs
   ownership of the registered model, a refresh of a monitor ownership of its table or MANAGE.
   https://learn.microsoft.com/azure/databricks/machine-learning/manage-model-lifecycle/ ("To set an alias ...
   you must be the owner"); https://docs.databricks.com/data-governance/unity-catalog/manage-privileges/
   ownership.html
9. **storage root** (a stack that creates its catalog): a workspace enabled for Unity Catalog automatically has a
   metastore without a metastore-level storage root, and then "you must provide a managed storage location" for a
   new catalog (https://learn.microsoft.com/azure/databricks/catalogs/create-catalog). ``metastores.summary()``
   (``GET /api/2.1/unity-catalog/metastore_summary``) says whether the metastore has one; without one the stack must
   set ``catalog.storageRoot``. A set ``storageRoot`` must lie under an external location
   (``external_locations.list()``, ``GET /api/2.1/unity-catalog/external-locations``) on which the caller holds
   CREATE MANAGED STORAGE (effective permissions on ``EXTERNAL_LOCATION``).
   https://docs.databricks.com/api/workspace/externallocations/list

10. **principals**: every principal the stack names (owner group, readers, writers, ``serving.consumers``,
    ``crossEnvironmentReaders``, ``previewIdentities``) exists in the workspace: a grant or permission to an unknown
    principal fails the deploy midway. SCIM lists with a filter (``GET /api/2.0/preview/scim/v2/Groups``,
    ``Users``, ``ServicePrincipals``): a UUID is a service principal's application id, a name with ``@`` a user,
    anything else a group (how ``infra.config.principal_kind`` names them in permissions).
    https://docs.databricks.com/api/workspace/groups/list
11. **model readers** (the stack's preview identities and the other stack's readers): once the registered models
    exist, each holds USE CATALOG, USE SCHEMA and EXECUTE on each, checked with the effective permissions of that
    principal (``grants.get_effective(..., principal=...)``: its direct grants and those inherited from the catalog
    and schema). Before the first deploy the line is a skip.
12. **state roles** (Azure, through the Azure CLI the pipeline logs in with): on this stack's state container
    (``PULUMI_BACKEND_URL_<STACK>`` in ``AZURE_STORAGE_ACCOUNT``), ``az role assignment list --scope <container>
    --include-inherited``: the stack's preview identities hold *Storage Blob Data Reader* and no write role, and no
    identity the other stack names (its preview identities, its run-as principal) holds any data role there. Without
    the Azure CLI or the two variables the line is a skip saying what to set.
    https://learn.microsoft.com/azure/storage/blobs/assign-azure-role-data-access

Nothing here writes: the tests hold every request to a GET (and every ``az`` call to a ``show`` or ``list``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from databricks.sdk.errors import DatabricksError, NotFound, PermissionDenied

from workloads.errors import MlopsError

if TYPE_CHECKING:
    from infra.config import StackConfig

Status = Literal["pass", "warn", "fail", "skip"]

SERVICE_PRINCIPAL_USER_ROLE = "roles/servicePrincipal.user"
CATALOG_PRIVILEGES = ("USE_CATALOG", "CREATE_SCHEMA", "MANAGE")  # what the deploy needs on a present catalog
ALL_PRIVILEGES_COVERS = {"USE_CATALOG", "CREATE_SCHEMA"}  # ALL PRIVILEGES does not include MANAGE
ACCOUNT_USERS = "account users"  # every account user is in it; UC grants to it apply to everyone


class DoctorError(MlopsError):
    """The doctor cannot start (no workspace host for the stack, an unreadable source stack)."""


@dataclass(frozen=True)
class CheckResult:
    """One preflight line: the check, its outcome, what was found, and what to do when it is not a pass."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Caller:
    """Who the workspace says we are, and every principal name a Unity Catalog grant to us could carry."""

    user_name: str
    groups: tuple[str, ...] = ()
    is_service_principal: bool = False

    @property
    def principals(self) -> set[str]:
        return {self.user_name, *self.groups, ACCOUNT_USERS}

    @property
    def rule_set_principals(self) -> set[str]:
        """The caller as access-control rule sets name principals (``users/<name>``, ``groups/<name>``...)."""
        kind = "servicePrincipals" if self.is_service_principal else "users"
        return {f"{kind}/{self.user_name}", *(f"groups/{g}" for g in self.groups)}


@dataclass
class DoctorReport:
    host: str
    stack: str
    caller: Caller | None = None
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status == "fail" for r in self.results)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", "") or "")


def _message(exc: Exception) -> str:
    """The workspace's message, without the config dump databricks-sdk appends to 401/403 messages."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in (". Config: ", ". Env: "):
        text = text.split(marker, 1)[0]
    return text


# What asking the workspace can raise: its error answers, and (requests' exceptions are OSErrors) the network.
WORKSPACE_ERRORS = (DatabricksError, OSError)


def _auth_fix(host: str) -> str:
    return (f"authenticate to {host}: `az login` (the stacks' authType azure-cli), or `databricks auth login "
            f"--host {host}`, or DATABRICKS_TOKEN / DATABRICKS_CLIENT_ID+DATABRICKS_CLIENT_SECRET")


# --- 1. identity ----------------------------------------------------------------------------------------
def check_identity(workspace, host: str) -> tuple[CheckResult, Caller | None]:
    try:
        me = workspace.current_user.me()
    except WORKSPACE_ERRORS as exc:  # any failure here means nothing else can be asked
        auth = getattr(getattr(workspace, "config", None), "auth_type", None)
        return CheckResult("identity", "fail", f"the workspace did not say who you are: {_message(exc)}"
                           + (f" (databricks-sdk auth: {auth})" if auth else ""), _auth_fix(host)), None
    groups = tuple(sorted(g.display for g in (me.groups or []) if g.display))
    # A service principal's SCIM userName is its application id (a UUID), a user's their e-mail address.
    is_sp = bool(me.user_name) and "@" not in me.user_name
    caller = Caller(user_name=me.user_name or "", groups=groups, is_service_principal=is_sp)
    kind = "service principal" if is_sp else "user"
    return CheckResult("identity", "pass", f"{kind} {caller.user_name}"
                       + (f" (groups: {', '.join(groups)})" if groups else "")), caller


# --- 2. metastore ---------------------------------------------------------------------------------------
def check_metastore(workspace) -> tuple[CheckResult, str | None]:
    fix = ("an account admin assigns a Unity Catalog metastore to this workspace (account console -> Catalog -> "
           "the region's metastore -> Workspaces -> Assign)")
    try:
        assignment = workspace.metastores.current()
    except WORKSPACE_ERRORS as exc:
        if isinstance(exc, NotFound):
            return CheckResult("metastore", "fail", f"no Unity Catalog metastore is assigned: {_message(exc)}",
                               fix), None
        return CheckResult("metastore", "fail", f"cannot read the metastore assignment: {_message(exc)}", fix), None
    if not assignment.metastore_id:
        return CheckResult("metastore", "fail", "no Unity Catalog metastore is assigned", fix), None
    return CheckResult("metastore", "pass", f"metastore {assignment.metastore_id}"), assignment.metastore_id


# --- 3. catalog -----------------------------------------------------------------------------------------
def effective_privileges(workspace, securable_type: str, full_name: str, caller: Caller,
                         principal: str | None = None) -> set[str]:
    """The privileges the caller holds on a securable, directly, through a group, or inherited from a parent.

    Reads every page (a page may be empty and still carry a ``next_page_token``, as the API documents).
    Groups nested in other groups are not resolved (SCIM ``Me`` lists direct groups). ``principal``: ask only for
    that principal's assignments (the API's ``principal`` filter), e.g. another identity than the caller.
    """
    held: set[str] = set()
    token: str | None = None
    while True:
        page = workspace.grants.get_effective(securable_type, full_name, max_results=0, page_token=token,
                                              principal=principal)
        for assignment in page.privilege_assignments or []:
            if assignment.principal in caller.principals:
                held |= {p.privilege.value if hasattr(p.privilege, "value") else str(p.privilege)
                         for p in assignment.privileges or [] if p.privilege}
        token = page.next_page_token
        if not token:
            return held


def _quoted(principal: str) -> str:
    return f"`{principal}`"


def check_catalog(workspace, config: StackConfig, caller: Caller, metastore_id: str | None) -> CheckResult:
    name = config.catalog.name
    if metastore_id is None:
        return CheckResult("catalog", "skip", f"catalog {name}: not checked without a metastore")
    try:
        info = workspace.catalogs.get(name)
    except WORKSPACE_ERRORS as exc:
        if isinstance(exc, NotFound):
            return _absent_catalog(workspace, config, caller, metastore_id)
        if isinstance(exc, PermissionDenied):
            return CheckResult("catalog", "fail", f"catalog {name}: you cannot see it: {_message(exc)}",
                               f"its owner grants you USE CATALOG, CREATE SCHEMA and MANAGE: GRANT USE CATALOG, "
                               f"CREATE SCHEMA, MANAGE ON CATALOG {name} TO {_quoted(caller.user_name)}")
        return CheckResult("catalog", "fail", f"catalog {name}: cannot read it: {_message(exc)}",
                           "rerun when the workspace answers; check the host and your network")
    exists_fix = ""
    if config.catalog.create:
        # `pulumi up` creates a catalog the stack declares; one that already exists (and is not yet in the stack's
        # state) makes it fail with "already exists". Doctor cannot see the state, so it says so.
        exists_fix = ("if this stack did not create it, set catalog.create: false (reuse it) or `pulumi import "
                      f"databricks:index/catalog:Catalog catalog {name}`")
    status: Status = "warn" if exists_fix else "pass"
    if info.owner and info.owner in caller.principals:
        return CheckResult("catalog", status, f"catalog {name} exists, owned by {info.owner} (you)", exists_fix)
    held = effective_privileges(workspace, "CATALOG", name, caller)
    if "ALL_PRIVILEGES" in held:
        held |= ALL_PRIVILEGES_COVERS
    missing = [p for p in CATALOG_PRIVILEGES if p not in held]
    if missing:
        needed = ", ".join(p.replace("_", " ") for p in missing)
        return CheckResult("catalog", "fail",
                           f"catalog {name} exists (owner {info.owner}); you lack {needed}",
                           f"its owner runs: GRANT {needed} ON CATALOG {name} TO {_quoted(caller.user_name)} "
                           f"(or makes you, or a group of yours, the owner)")
    return CheckResult("catalog", status, f"catalog {name} exists; you hold "
                       + ", ".join(p.replace("_", " ") for p in CATALOG_PRIVILEGES), exists_fix)


def _absent_catalog(workspace, config: StackConfig, caller: Caller, metastore_id: str) -> CheckResult:
    name = config.catalog.name
    if not config.catalog.create:
        return CheckResult("catalog", "fail", f"catalog {name} does not exist and catalog.create is false",
                           f"create the catalog {name} (or fix catalog.name), or set catalog.create: true")
    held = effective_privileges(workspace, "METASTORE", metastore_id, caller)
    if "CREATE_CATALOG" in held:
        return CheckResult("catalog", "pass", f"catalog {name} does not exist yet; you hold CREATE CATALOG "
                           "on the metastore: the deploy creates it")
    try:
        owner = workspace.metastores.summary().owner
    except WORKSPACE_ERRORS:  # the summary is only a second chance; the grant is what the fix asks for
        owner = None
    if owner and owner in caller.principals:
        return CheckResult("catalog", "pass", f"catalog {name} does not exist yet; you are the metastore admin "
                           f"({owner}): the deploy creates it")
    return CheckResult("catalog", "fail",
                       f"catalog {name} does not exist and you cannot create it (no CREATE CATALOG on metastore "
                       f"{metastore_id})",
                       f"a metastore admin runs: GRANT CREATE CATALOG ON METASTORE TO {_quoted(caller.user_name)}; or "
                       f"creates {name} for you and you set catalog.create: false")


# --- 4. warehouse ---------------------------------------------------------------------------------------
def check_warehouse(workspace, config: StackConfig) -> CheckResult:
    if not config.warehouse_id:
        return CheckResult("warehouse", "warn",
                           f"warehouseId is not set: the deploy creates a serverless SQL warehouse "
                           f"mlops-{config.environment}",
                           "you need permission to create SQL warehouses, or set lakehouse-mlops:warehouseId to an "
                           "existing warehouse's id")
    fix = ("set lakehouse-mlops:warehouseId to an existing warehouse (SQL Warehouses -> the warehouse -> Overview: "
           "its id), or remove the key and the deploy creates one")
    try:
        warehouse = workspace.warehouses.get(config.warehouse_id)
    except WORKSPACE_ERRORS as exc:
        if isinstance(exc, NotFound):
            return CheckResult("warehouse", "fail", f"SQL warehouse {config.warehouse_id} does not exist", fix)
        if isinstance(exc, PermissionDenied):
            return CheckResult("warehouse", "fail", f"SQL warehouse {config.warehouse_id}: {_message(exc)}",
                               "its owner gives you CAN USE (SQL Warehouses -> the warehouse -> Permissions)")
        return CheckResult("warehouse", "fail", f"SQL warehouse {config.warehouse_id}: {_message(exc)}", fix)
    state = warehouse.state.value if warehouse.state else "UNKNOWN"
    if state in ("DELETED", "DELETING"):
        return CheckResult("warehouse", "fail", f"SQL warehouse {config.warehouse_id} ({warehouse.name}) is {state}",
                           fix)
    return CheckResult("warehouse", "pass", f"SQL warehouse {config.warehouse_id} ({warehouse.name}, {state})")


# --- 5. run-as service principal ------------------------------------------------------------------------
def check_run_as(workspace, config: StackConfig, caller: Caller) -> CheckResult:
    if config.run_as is None:
        return CheckResult("run-as", "skip", "no runAs.servicePrincipal: the jobs run as the deploying identity")
    app_id = config.run_as.service_principal
    try:
        # The SDK pages on; the first match is all we need (one request).
        sp = next(iter(workspace.service_principals.list(filter=f'applicationId eq "{app_id}"')), None)
    except WORKSPACE_ERRORS as exc:
        return CheckResult("run-as", "fail", f"cannot list service principals: {_message(exc)}",
                           "ask a workspace admin to run `mlops doctor`, or check the principal by hand")
    if sp is None:
        return CheckResult("run-as", "fail", f"service principal {app_id} is not in this workspace",
                           "add it (account console -> User management -> Service principals -> add by application "
                           "id; then assign it to this workspace), or fix lakehouse-mlops:runAs.servicePrincipal")
    name = f"{sp.display_name or app_id} ({app_id})"
    if sp.active is False:
        return CheckResult("run-as", "fail", f"service principal {name} is deactivated",
                           "an admin activates it (Settings -> Identity and access -> Service principals)")
    if caller.is_service_principal and caller.user_name == app_id:
        return CheckResult("run-as", "pass", f"service principal {name} is active; it is you")
    account_id = getattr(workspace.config, "account_id", None)
    role_fix = (f"a Service Principal Manager of {name} (or an account admin) grants {caller.user_name} the "
                "Service Principal: User role (Settings -> Identity and access -> Service principals -> the "
                "principal -> Permissions)")
    if not account_id:
        return CheckResult("run-as", "warn",
                           f"service principal {name} is active; whether you hold its User role was not checked "
                           "(no account id: the workspace did not publish it and DATABRICKS_ACCOUNT_ID is unset)",
                           "set DATABRICKS_ACCOUNT_ID and rerun, or check the role by hand: " + role_fix)
    rule_set = f"accounts/{account_id}/servicePrincipals/{app_id}/ruleSets/default"
    try:
        rules = workspace.account_access_control_proxy.get_rule_set(rule_set, "")
    except WORKSPACE_ERRORS as exc:
        return CheckResult("run-as", "warn",
                           f"service principal {name} is active; its roles could not be read: {_message(exc)}",
                           "check by hand that you hold the Service Principal: User role: " + role_fix)
    users = {p for rule in rules.grant_rules or [] if rule.role == SERVICE_PRINCIPAL_USER_ROLE
             for p in rule.principals or []}
    mine = sorted(users & caller.rule_set_principals)
    if not mine:
        return CheckResult("run-as", "fail",
                           f"service principal {name} is active, but you cannot run jobs as it (no Service Principal "
                           "User role)", role_fix)
    return CheckResult("run-as", "pass", f"service principal {name} is active; you may use it (via {', '.join(mine)})")


# --- 6. serving and serverless jobs ---------------------------------------------------------------------
def check_model_serving(workspace) -> CheckResult:
    try:
        endpoints = list(workspace.serving_endpoints.list())
    except WORKSPACE_ERRORS as exc:
        if _error_code(exc) == "FEATURE_DISABLED":
            return CheckResult("model serving", "fail", f"Model Serving is not enabled here: {_message(exc)}",
                               "use a Premium workspace in a region with Model Serving, or ask Databricks to enable it")
        return CheckResult("model serving", "fail", f"cannot list serving endpoints: {_message(exc)}",
                           "you need workspace access to Model Serving (Serving in the sidebar)")
    count = f"{len(endpoints)} endpoint" + ("" if len(endpoints) == 1 else "s")
    return CheckResult("model serving", "pass", f"Model Serving answers ({count})")


def check_serverless_jobs(metastore_id: str | None) -> CheckResult:
    doc = "https://learn.microsoft.com/azure/databricks/compute/serverless/"
    if metastore_id is None:
        return CheckResult("serverless jobs", "fail", "serverless compute needs Unity Catalog, and there is no "
                           "metastore", f"assign a metastore (above); see {doc}")
    return CheckResult("serverless jobs", "warn",
                       "not checked: Databricks has no read-only API for it; Unity Catalog (its requirement) is "
                       "enabled, the region must support serverless compute",
                       f"if the first job run fails to start, check the region and the account's serverless setting: "
                       f"{doc}")


# --- 7. source models -----------------------------------------------------------------------------------
def check_source_models(workspace, names: list[str], source_stack: str, caller: Caller) -> list[CheckResult]:
    results = []
    for full_name in names:
        check = f"{source_stack} model"
        try:
            workspace.registered_models.get(full_name)
        except WORKSPACE_ERRORS as exc:
            if isinstance(exc, PermissionDenied):
                catalog, schema, _ = full_name.split(".", 2)
                results.append(CheckResult(check, "fail", f"{full_name}: permission denied: {_message(exc)}",
                                           f"grant {caller.user_name} USE CATALOG on {catalog}, USE SCHEMA on "
                                           f"{catalog}.{schema} and EXECUTE on {full_name}; if {catalog} is bound "
                                           "to its own workspace, add a read-only binding for this one"))
            elif isinstance(exc, NotFound):
                results.append(CheckResult(check, "warn", f"{full_name} does not exist: not trained yet",
                                           f"train it in {source_stack} first; `mlops promote` copies its champion"))
            else:
                results.append(CheckResult(check, "fail", f"{full_name}: {_message(exc)}",
                                           "rerun when the workspace answers"))
            continue
        results.append(CheckResult(check, "pass", f"{full_name} is readable"))
    return results


def source_stack_of(config: StackConfig) -> str | None:
    """The stack a stack's champions are promoted from: the previous environment in the promotion order
    (prod <- dev), as the pipeline's DeployProd runs `stack_info.py env --stack prod --from-stack dev`."""
    from workloads.environments import ENVIRONMENT_ORDER

    index = ENVIRONMENT_ORDER.index(config.environment)
    return ENVIRONMENT_ORDER[index - 1] if index > 0 else None


def other_stack_config(config: StackConfig) -> StackConfig | None:
    """The other environment's stack config (prod for dev, dev for prod), whose identities must hold nothing on this
    stack's state; None when there is no such stack file."""
    from infra.config import stack_config_from_file
    from infra.offline import stack_file
    from workloads.environments import ENVIRONMENT_ORDER

    for environment in ENVIRONMENT_ORDER:
        if environment != config.environment and stack_file(environment).exists():
            return stack_config_from_file(environment)
    return None


def source_model_names(config: StackConfig, source_stack: str) -> list[str]:
    """The registered models ``mlops promote --from <source>`` reads for this stack's models: the source stack's
    catalog with this stack's models schema, exactly as the pipeline's exported environment names them."""
    from infra.pipeline.stack_info import StackInfoError, stack_env
    from workloads.settings import DEFAULT_SCHEMA, Settings

    try:
        env = stack_env(config.stack, source_stack)
    except StackInfoError as exc:
        raise DoctorError(f"cannot read the source stack {source_stack!r}: {exc}") from None
    source = Settings(backend="databricks", env=config.environment, catalog=env[f"MLOPS_CATALOG_{source_stack.upper()}"],
                      schema_name=env.get("MLOPS_SCHEMA", DEFAULT_SCHEMA))
    return [source.registered_model(model) for model in config.models]


# --- 8. owner group -------------------------------------------------------------------------------------
def check_owner_group(workspace, config: StackConfig, caller: Caller) -> CheckResult:
    owner = config.grants.owner
    fix = (f"an account admin adds {{who}} to the group {owner} (account console -> User management -> Groups); "
           f"{owner} should hold this stack's deploy identity and run-as principal only (docs/deploy.md, Identities)")
    if owner not in caller.principals:
        return CheckResult("owner group", "fail",
                           f"you ({caller.user_name}) are not in {owner}, which owns what the stack creates: the "
                           "deploy would lose its rights on the catalog right after creating it",
                           fix.format(who=caller.user_name))
    if config.run_as is None:
        return CheckResult("owner group", "pass", f"you are in {owner}; the jobs run as you")
    app_id = config.run_as.service_principal
    sp = next(iter(workspace.service_principals.list(filter=f'applicationId eq "{app_id}"',
                                                     attributes="groups")), None)
    groups = {g.display for g in (getattr(sp, "groups", None) or []) if g.display}
    if owner not in groups:
        return CheckResult("owner group", "fail",
                           f"you are in {owner}; the run-as principal {app_id} is not (groups: "
                           f"{', '.join(sorted(groups)) or 'none'}): it could not move aliases or refresh monitors",
                           fix.format(who=f"service principal {app_id}"))
    return CheckResult("owner group", "pass", f"you and the run-as principal {app_id} are in {owner}")


# --- 9. storage root ------------------------------------------------------------------------------------
def check_storage_root(workspace, config: StackConfig, caller: Caller, metastore_id: str | None) -> CheckResult:
    if not config.catalog.create:
        return CheckResult("storage root", "skip", "the stack reuses its catalog: it creates no managed storage")
    if metastore_id is None:
        return CheckResult("storage root", "skip", "not checked without a metastore")
    wanted = config.catalog.storage_root
    if not wanted:
        root = workspace.metastores.summary().storage_root
        if root:
            return CheckResult("storage root", "pass", f"the catalog's tables go to the metastore's root {root}")
        return CheckResult("storage root", "fail",
                           "the metastore has no storage root (automatic Unity Catalog) and catalog.storageRoot is "
                           "not set: creating the catalog would fail",
                           "set lakehouse-mlops:catalog.storageRoot to an abfss:// path under an external location "
                           "you hold CREATE MANAGED STORAGE on")
    covering = sorted((loc for loc in workspace.external_locations.list()
                       if loc.url and wanted.rstrip("/").startswith(loc.url.rstrip("/"))),
                      key=lambda loc: len(loc.url or ""), reverse=True)
    if not covering:
        return CheckResult("storage root", "fail", f"no external location covers catalog.storageRoot {wanted}",
                           "a metastore admin creates an external location for it (Catalog -> External data), or "
                           "fix catalog.storageRoot")
    location = covering[0]
    held = effective_privileges(workspace, "EXTERNAL_LOCATION", location.name, caller)
    if "CREATE_MANAGED_STORAGE" not in held and "ALL_PRIVILEGES" not in held and location.owner not in caller.principals:
        return CheckResult("storage root", "fail",
                           f"{wanted} is in external location {location.name}; you lack CREATE MANAGED STORAGE on it",
                           f"its owner runs: GRANT CREATE MANAGED STORAGE ON EXTERNAL LOCATION `{location.name}` TO "
                           f"{_quoted(caller.user_name)}")
    return CheckResult("storage root", "pass", f"{wanted} is in external location {location.name}, where you may "
                       "create managed storage")


# --- 10. principals --------------------------------------------------------------------------------------
def named_principals(config: StackConfig) -> dict[str, list[str]]:
    """Every principal the stack grants something to, with the config keys that name it."""
    keys: dict[str, list[str]] = {}
    named = [("grants.owner", [config.grants.owner]), ("grants.readers", config.grants.readers),
             ("grants.writers", config.grants.writers), ("serving.consumers", config.serving.consumers),
             ("grants.crossEnvironmentReaders", config.grants.cross_environment_readers),
             ("grants.previewIdentities", config.grants.preview_identities)]
    for key, principals in named:
        for principal in principals:
            keys.setdefault(principal, []).append(key)
    return keys


def _principal_exists(workspace, principal: str) -> bool:
    from infra.config import principal_kind

    kind = principal_kind(principal)
    if kind == "service_principal":
        found = workspace.service_principals.list(filter=f'applicationId eq "{principal}"', attributes="id")
    elif kind == "user":
        found = workspace.users.list(filter=f'userName eq "{principal}"', attributes="id")
    else:
        found = workspace.groups.list(filter=f'displayName eq "{principal}"', attributes="id")
    return next(iter(found), None) is not None


def check_principals(workspace, config: StackConfig) -> CheckResult:
    named = named_principals(config)
    missing = {p: keys for p, keys in named.items() if not _principal_exists(workspace, p)}
    if missing:
        listed = "; ".join(f"{p} ({', '.join(keys)})" for p, keys in missing.items())
        return CheckResult("principals", "fail",
                           f"not in this workspace: {listed}: the deploy would fail granting to them",
                           "an account admin creates or assigns them to this workspace (account console -> User "
                           "management), or fix the keys named")
    return CheckResult("principals", "pass", f"all {len(named)} principals the stack grants to exist")


# --- 11. model readers ------------------------------------------------------------------------------------
MODEL_READER_PRIVILEGES = (("CATALOG", "USE_CATALOG"), ("SCHEMA", "USE_SCHEMA"), ("REGISTERED_MODEL", "EXECUTE"))


def _principal_privileges(workspace, securable_type: str, full_name: str, principal: str) -> set[str]:
    return effective_privileges(workspace, securable_type, full_name, Caller(user_name=principal), principal=principal)


def check_model_readers(workspace, config: StackConfig) -> CheckResult:
    from infra.components.platform import model_readers
    from workloads.settings import Settings

    readers = model_readers(config)
    if not readers:
        return CheckResult("model readers", "skip", "the stack names no previewIdentities or crossEnvironmentReaders")
    settings = Settings(backend="databricks", env=config.environment, catalog=config.catalog.name,
                        schema_name=config.schemas.models)
    models = [settings.registered_model(m) for m in config.models]
    try:
        for name in models:
            workspace.registered_models.get(name)
    except NotFound:
        return CheckResult("model readers", "skip", f"{name} does not exist yet: the deploy declares the readers' "
                           "grants with the models; rerun after it")
    lacking = []
    for reader in readers:
        for securable_type, privilege in MODEL_READER_PRIVILEGES:
            names = {"CATALOG": [config.catalog.name], "SCHEMA": [f"{config.catalog.name}.{config.schemas.models}"],
                     "REGISTERED_MODEL": models}[securable_type]
            for full_name in names:
                held = _principal_privileges(workspace, securable_type, full_name, reader)
                if privilege not in held and "ALL_PRIVILEGES" not in held:
                    lacking.append(f"{reader} lacks {privilege.replace('_', ' ')} on {full_name}")
    if lacking:
        return CheckResult("model readers", "fail", "; ".join(lacking),
                           f"run `pulumi up --stack {config.stack}`: the stack declares these grants (a grant made "
                           "by hand is revoked by the next deploy)")
    return CheckResult("model readers", "pass", f"{len(readers)} reader(s) hold USE CATALOG, USE SCHEMA and EXECUTE "
                       f"on the {len(models)} models")


# --- 12. state roles (Azure) ------------------------------------------------------------------------------
BLOB_WRITE_ROLES = {"Storage Blob Data Contributor", "Storage Blob Data Owner", "Owner", "Contributor"}
BLOB_DATA_ROLES = BLOB_WRITE_ROLES | {"Storage Blob Data Reader"}


def run_az(args: list[str]):
    """The JSON an ``az`` command prints (the Azure CLI's own login), or raises ``OSError`` with its message."""
    import json
    import shutil
    import subprocess

    if shutil.which("az") is None:
        raise FileNotFoundError("the Azure CLI (az) is not installed")
    done = subprocess.run(["az", *args, "-o", "json"], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise OSError((done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout) else
                      f"az exited {done.returncode}")
    return json.loads(done.stdout or "null")


def check_state_roles(config: StackConfig, other: StackConfig | None, env: dict[str, str],
                      az: Callable[[list[str]], Any] = run_az) -> CheckResult:
    url_key = f"PULUMI_BACKEND_URL_{config.stack.upper()}"
    url, account = env.get(url_key, ""), env.get("AZURE_STORAGE_ACCOUNT", "")
    if not url.startswith("azblob://") or not account:
        return CheckResult("state roles", "skip", f"{url_key} (azblob://<container>) and AZURE_STORAGE_ACCOUNT are "
                           "not both set: the state container's roles were not checked",
                           "set them as in the pipeline's variable group and rerun, logged in with `az login`")
    container = url.removeprefix("azblob://").split("?", 1)[0].strip("/")
    try:
        account_id = az(["storage", "account", "show", "--name", account, "--query", "id"])
        scope = f"{account_id}/blobServices/default/containers/{container}"
        assignments = az(["role", "assignment", "list", "--scope", scope, "--include-inherited"]) or []
    except OSError as exc:
        return CheckResult("state roles", "warn", f"the roles on container {container} could not be read: {exc}",
                           "rerun logged in (`az login`) as someone who may read role assignments")
    # a service principal's principalName is its application id, how the stack configs name identities
    roles: dict[str, set[str]] = {}
    for assignment in assignments:
        name = assignment.get("principalName") or assignment.get("principalId")
        if name:
            roles.setdefault(str(name).lower(), set()).add(assignment.get("roleDefinitionName", ""))
    problems = []
    for preview in config.grants.preview_identities:
        held = roles.get(preview, set())
        if "Storage Blob Data Reader" not in held:
            problems.append(f"preview identity {preview} lacks Storage Blob Data Reader")
        if held & BLOB_WRITE_ROLES:
            problems.append(f"preview identity {preview} may write ({', '.join(sorted(held & BLOB_WRITE_ROLES))})")
    if other is not None:
        foreign = [*other.grants.preview_identities, *([other.run_as.service_principal] if other.run_as else [])]
        for principal in foreign:
            held = roles.get(principal, set()) & BLOB_DATA_ROLES
            if held:
                problems.append(f"{other.stack}'s identity {principal} holds {', '.join(sorted(held))}")
    writers = sorted(p for p, held in roles.items() if held & BLOB_WRITE_ROLES)
    if problems:
        return CheckResult("state roles", "fail", f"container {container}: " + "; ".join(problems),
                           f"assign roles per container (docs/deploy.md, Pulumi state): `az role assignment create "
                           f"--role \"Storage Blob Data Reader\" --assignee <preview id> --scope {scope}`; delete the "
                           "other stack's assignments")
    return CheckResult("state roles", "pass", f"container {container}: preview identities read only; may write: "
                       + (", ".join(writers) or "nobody listed"))


def _guarded(check: str, run: Callable[..., CheckResult], *args) -> CheckResult:
    """A check's result, or a failed line when the workspace answered something the check did not expect (one
    unreadable answer must not hide the other checks' lines)."""
    try:
        return run(*args)
    except WORKSPACE_ERRORS as exc:
        return CheckResult(check, "fail", f"could not be checked: {type(exc).__name__}: {_message(exc)}",
                           "rerun with --debug for the full error; fix what it names")


# --- all of them ----------------------------------------------------------------------------------------
# databricks-sdk retries a request for up to 5 minutes by default; an unreachable host would keep a preflight
# silent that long (twice: the host metadata probe, then the first call). Rate limits still get retried.
RETRY_TIMEOUT_S = 30


def workspace_client(host: str):
    """A databricks-sdk ``WorkspaceClient`` for ``host`` with whatever auth the SDK finds for the user."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(config=Config(host=host, retry_timeout_seconds=RETRY_TIMEOUT_S))


def run_doctor(config: StackConfig, *, host: str | None = None, workspace=None,
               source_stack: str | None = None,
               connect: Callable[[str], Any] = workspace_client,
               other: StackConfig | None = None, env: dict[str, str] | None = None,
               az: Callable[[list[str]], Any] = run_az) -> DoctorReport:
    """Run every check against the stack's workspace.

    Args:
        config: The stack's validated config (``infra.config.stack_config_from_file``).
        host: Workspace URL; default the stack's ``databricks:host``.
        workspace: A ``WorkspaceClient`` to use instead of connecting (tests).
        source_stack: The stack whose models this one is promoted from; None: none (a dev stack).
        connect: Builds the client from the host when ``workspace`` is not given.
        other: The other stack's config (its identities must hold nothing on this stack's state).
        env: Environment with ``PULUMI_BACKEND_URL_<STACK>`` and ``AZURE_STORAGE_ACCOUNT`` (default: ``os.environ``).
        az: Runs an Azure CLI command and returns its JSON (tests pass a fake).

    Raises:
        DoctorError: no host, or the source stack cannot be read.
    """
    host = host or config.host
    if not host and workspace is None:
        raise DoctorError(f"Pulumi.{config.stack}.yaml has no databricks:host; set it or pass --host")
    names = source_model_names(config, source_stack) if source_stack else []
    report = DoctorReport(host=host or "", stack=config.stack)
    if workspace is None:
        try:
            workspace = connect(host)
        except ValueError as exc:  # databricks-sdk found no usable credentials for the host
            report.results.append(CheckResult("identity", "fail", f"no Databricks auth for {host}: "
                                              f"{_message(exc)}", _auth_fix(host)))
            return report
    identity, caller = check_identity(workspace, report.host)
    report.results.append(identity)
    report.caller = caller
    if caller is None:
        return report  # nothing else can be asked without an identity
    metastore, metastore_id = check_metastore(workspace)
    report.results.append(metastore)
    report.results += [
        _guarded("catalog", check_catalog, workspace, config, caller, metastore_id),
        _guarded("storage root", check_storage_root, workspace, config, caller, metastore_id),
        _guarded("owner group", check_owner_group, workspace, config, caller),
        _guarded("warehouse", check_warehouse, workspace, config),
        _guarded("run-as", check_run_as, workspace, config, caller),
        _guarded("model serving", check_model_serving, workspace),
        check_serverless_jobs(metastore_id),
        _guarded("principals", check_principals, workspace, config),
        _guarded("model readers", check_model_readers, workspace, config),
    ]
    if names:
        report.results += check_source_models(workspace, names, source_stack, caller)
    import os

    report.results.append(check_state_roles(config, other, dict(os.environ) if env is None else env, az))
    return report
