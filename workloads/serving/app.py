"""The local serving endpoint: a FastAPI app shaped like Databricks Model Serving.

Routes:

- ``POST /serving-endpoints/{name}/invocations`` (Databricks) and ``POST /invocations`` (MLflow);
- ``GET /serving-endpoints/{name}`` and ``GET /api/2.0/serving-endpoints/{name}``: the endpoint in
  the REST API's ``ServingEndpointDetailed`` shape (what ``databricks-sdk`` ``serving_endpoints.get``
  reads), ``GET /api/2.0/serving-endpoints`` lists it;
- ``GET /ping``, ``GET /health``;
- local only, for simulating later days: ``POST /mlops/days-ahead/{days}/serving-endpoints/{name}/invocations`` and
  ``POST /mlops/days-ahead/{days}/invocations`` score exactly as the routes above, but the payload row's
  ``request_time`` is the endpoint's clock plus ``days`` days (a finite number, 0 or more), so the request lands
  in a later monitoring window while the endpoint keeps serving everyone else on its own clock. The offset is
  per request (no state to undo; concurrent traffic is not moved) and honoured only from a loopback client
  (127.0.0.1 or ::1): any other client gets 403 ``PERMISSION_DENIED``, a bad ``days`` gets 400
  ``INVALID_PARAMETER_VALUE``; either is logged like every refused request. :func:`days_ahead_url` turns an
  endpoint URL into its days-ahead form (``mlops drift simulate --days-ahead N`` sends through it). Databricks
  Model Serving has no such route: time there is real.

Every invocation, good or bad, is logged as one payload row before its response is sent.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from workloads.clock import Clock, utc_now
from workloads.serving.champion import Champion
from workloads.serving.payload_log import PayloadLogger, PayloadRecord
from workloads.serving.payloads import PayloadError, parse_request, predictions_list
from workloads.settings import Settings
from workloads.specs import ModelSpec

# Databricks logs request/response bodies up to 1 MiB and flags larger ones instead.
LOG_BODY_LIMIT = 1024 * 1024
DEFAULT_MAX_BODY = 16 * 1024 * 1024
# The local endpoint's days-ahead routes (see the module docstring); loopback clients only.
DAYS_AHEAD_ROUTE = "/mlops/days-ahead"
MAX_DAYS_AHEAD = 3660  # ten years: more is a typo, not a simulation


def days_ahead_url(url: str, days: float) -> str:
    """``url`` (an endpoint's base URL or its invocations URL) in the form that logs requests ``days`` days ahead.

    Example: ``days_ahead_url("http://127.0.0.1:8080", 1)`` is ``http://127.0.0.1:8080/mlops/days-ahead/1.0``;
    ``send_traffic`` appends ``/serving-endpoints/<name>/invocations`` to it. ``days == 0`` returns ``url``.
    """
    if days == 0:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{DAYS_AHEAD_ROUTE}/{float(days)!r}{parts.path.rstrip('/')}"))


def _days_ahead(days: str, client_host: str | None) -> tuple[timedelta | None, tuple[int, str] | None]:
    """``(offset, None)`` for a days-ahead request this endpoint honours, else ``(None, (status, error body))``."""
    try:
        loopback = client_host is not None and ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        source = client_host or "an unknown address"
        return None, _error(403, "PERMISSION_DENIED", f"{DAYS_AHEAD_ROUTE}/... is accepted only from 127.0.0.1 or "
                                                      f"::1 (this request came from {source})")
    try:
        value = float(days)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > MAX_DAYS_AHEAD:
        return None, _error(400, "INVALID_PARAMETER_VALUE", f"days ahead must be a number from 0 to "
                                                            f"{MAX_DAYS_AHEAD}, got {days!r}")
    return timedelta(days=value), None


@dataclass
class EndpointConfig:
    """How the app behaves; the clock is injectable so tests and the demo can move time."""

    settings: Settings
    spec: ModelSpec
    clock: Clock = utc_now
    max_body_bytes: int = DEFAULT_MAX_BODY
    created_at: float = field(default_factory=time.time)
    # The payload table's ``requester``: Databricks writes "the ID of the user or service principal whose
    # permissions are used for the invocation request" (the AI Gateway inference table's column comment,
    # https://learn.microsoft.com/azure/databricks/ai-gateway/inference-tables), never a client address. The local
    # endpoint has no authentication: every request runs with the permissions of whoever started it, so that
    # identity is logged (default: ``workloads.promotion.actor()``, i.e. MLOPS_ACTOR or user@host).
    requester: str | None = None


def _error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, json.dumps({"error_code": code, "message": message})


def endpoint_description(config: EndpointConfig, champion: Champion) -> dict:
    """The endpoint as the Databricks REST API describes it (``ServingEndpointDetailed``)."""
    spec, settings = config.spec, config.settings
    served = champion.current
    created_ms = int(config.created_at * 1000)
    return {
        "name": spec.endpoint_name,
        "id": f"local-{spec.endpoint_name}",
        "creator": "local",
        "creation_timestamp": created_ms,
        "last_updated_timestamp": created_ms,
        "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
        "config": {
            "config_version": champion.swaps + 1,
            "served_entities": [{
                "name": served.entity_name,
                "entity_name": settings.registered_model(spec.name),
                "entity_version": str(served.version),
                "workload_size": "Small",
                "scale_to_zero_enabled": False,
                "state": {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""},
            }],
            "traffic_config": {"routes": [{"served_model_name": served.entity_name,
                                           "served_entity_name": served.entity_name,
                                           "traffic_percentage": 100}]},
        },
        "ai_gateway": {"inference_table_config": {
            "catalog_name": settings.catalog,
            "schema_name": settings.schema_name,
            "table_name_prefix": spec.payload_prefix,
            "enabled": True,
        }},
    }


class Scorer:
    """Parses, scores and logs one request; runs in a worker thread."""

    def __init__(self, config: EndpointConfig, champion: Champion, logger: PayloadLogger):
        self.config = config
        self.champion = champion
        self.logger = logger

    def handle(self, raw: bytes, started: float, request_time: datetime, requester: str | None,
               oversize: bool = False, refused: tuple[int, str] | None = None) -> tuple[int, str, str]:
        """Returns ``(status_code, response_json, served_entity_name)`` after logging the request.

        ``refused`` is ``(status, error body)`` of a request the route already turned down (a days-ahead request
        it does not honour): logged and answered as is, not scored.
        """
        served = self.champion.current
        client_request_id = None
        if refused is not None:
            status, response = refused
            client_request_id = _client_id(raw)
        elif oversize:
            # 413 (RFC 9110 "Content Too Large"); not REQUEST_LIMIT_EXCEEDED, which is Databricks' rate-limit code
            # (databricks-sdk maps it to TooManyRequests, HTTP 429): a client must not back off and resend the body.
            status, response = _error(413, "BAD_REQUEST",
                                      f"request body exceeds the {self.config.max_body_bytes} byte limit")
        else:
            try:
                parsed = parse_request(raw, self.config.spec)
                client_request_id = parsed.client_request_id
                try:
                    predictions = predictions_list(served.predict(parsed.frame))
                except Exception as exc:  # noqa: BLE001 - model errors are the client's input problem here
                    raise PayloadError(f"model failed to score the input: {type(exc).__name__}: {exc}") from None
                status, response = 200, json.dumps({"predictions": predictions})
            except PayloadError as exc:
                status, response = _error(exc.status_code, exc.error_code, str(exc))
                client_request_id = _client_id(raw) if client_request_id is None else client_request_id
            except Exception as exc:  # noqa: BLE001 - a bug must still answer and be logged, not drop the row
                status, response = _error(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
        request_text, codes = None, []
        if oversize or len(raw) > LOG_BODY_LIMIT:
            codes.append("MAX_REQUEST_SIZE_EXCEEDED")
        else:
            request_text = raw.decode("utf-8", errors="replace")
        response_text = response
        if len(response) > LOG_BODY_LIMIT:
            response_text = None
            codes.append("MAX_RESPONSE_SIZE_EXCEEDED")
        self.logger.log(PayloadRecord(
            databricks_request_id=str(uuid.uuid4()),
            client_request_id=client_request_id,
            request_time=request_time,
            status_code=status,
            execution_duration_ms=int((time.perf_counter() - started) * 1000),
            request=request_text,
            response=response_text,
            served_entity_id=served.served_entity_id,
            logging_error_codes=codes,
            requester=requester,
        ))
        return status, response, served.entity_name


def _client_id(raw: bytes) -> str | None:
    """Best-effort client request id of a rejected body (logged so the client can find its row)."""
    try:
        value = json.loads(raw).get("client_request_id")
    except Exception:  # noqa: BLE001 - the body is already known to be bad
        return None
    return value if isinstance(value, str) else None


def create_app(config: EndpointConfig, champion: Champion, logger: PayloadLogger) -> FastAPI:
    """The FastAPI app for one model's endpoint (champion and logger already started)."""
    app = FastAPI(title=f"mlops serving: {config.spec.endpoint_name}", docs_url=None, redoc_url=None)
    scorer = Scorer(config, champion, logger)
    endpoint = config.spec.endpoint_name
    if config.requester is None:
        from workloads.promotion import actor

        config.requester = actor()
    requester = config.requester

    async def _invoke(request: Request, days_ahead: str | None = None) -> Response:
        started = time.perf_counter()
        request_time = config.clock()
        refused = None
        if days_ahead is not None:
            offset, refused = _days_ahead(days_ahead, request.client.host if request.client else None)
            if offset is not None:
                request_time += offset
        length = request.headers.get("content-length")
        oversize = length is not None and length.isdigit() and int(length) > config.max_body_bytes
        raw = b"" if oversize else await request.body()
        oversize = oversize or len(raw) > config.max_body_bytes
        status, body, entity = await run_in_threadpool(scorer.handle, raw, started, request_time, requester, oversize,
                                                       refused)
        return Response(body, status_code=status, media_type="application/json",
                        headers={"served-model-name": entity})

    @app.post("/serving-endpoints/{name}/invocations")
    async def databricks_invocations(name: str, request: Request) -> Response:
        if name != endpoint:
            return _not_found(name)
        return await _invoke(request)

    @app.post("/invocations")
    async def mlflow_invocations(request: Request) -> Response:
        return await _invoke(request)

    @app.post(DAYS_AHEAD_ROUTE + "/{days}/serving-endpoints/{name}/invocations")
    async def databricks_invocations_days_ahead(days: str, name: str, request: Request) -> Response:
        if name != endpoint:
            return _not_found(name)
        return await _invoke(request, days)

    @app.post(DAYS_AHEAD_ROUTE + "/{days}/invocations")
    async def mlflow_invocations_days_ahead(days: str, request: Request) -> Response:
        return await _invoke(request, days)

    @app.get("/serving-endpoints/{name}")
    @app.get("/api/2.0/serving-endpoints/{name}")
    async def get_endpoint(name: str) -> Response:
        if name != endpoint:
            return _not_found(name)
        return JSONResponse(endpoint_description(config, champion))

    @app.get("/api/2.0/serving-endpoints")
    async def list_endpoints() -> Response:
        return JSONResponse({"endpoints": [endpoint_description(config, champion)]})

    @app.get("/.well-known/databricks-config")
    async def host_metadata(request: Request) -> Response:
        # What databricks-sdk probes when a WorkspaceClient is created; a local host has no OIDC or account.
        return JSONResponse({"oidc_endpoint": f"{str(request.base_url).rstrip('/')}/oidc"})

    @app.get("/ping")
    @app.get("/health")
    async def ping() -> Response:
        return Response("\n", media_type="application/json")

    return app


def _not_found(name: str) -> Response:
    return JSONResponse({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"serving endpoint {name!r} not found"},
                        status_code=404)
