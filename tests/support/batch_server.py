"""A local stand-in for the OpenAI Files + Batches API and the Gemini (Developer API) batch API.

The official SDKs (``openai``, ``google-genai``) work against it unchanged; every batched
request is forwarded to an upstream llm-katan, so a batch answer equals the answer an online
call to the same llm-katan gets::

    with BatchServer(upstream_openai=katan.openai_url, upstream_gemini=katan.gemini_url) as server:
        client = openai.OpenAI(base_url=server.openai_url, api_key=KEY)
        genai.Client(vertexai=False, api_key=KEY,
                     http_options=types.HttpOptions(base_url=server.gemini_url))

The server runs in a thread of the test process (stdlib ``ThreadingHTTPServer``); all state
lives in the :class:`BatchServer` object behind one lock, so another process (a ``fairspec
run`` child that may be killed) can talk to it the whole time.

Wire formats
------------
OpenAI (``/v1``): ``POST /files`` (multipart ``purpose``, ``file``), ``GET /files/{id}``,
``GET /files/{id}/content``, ``DELETE /files/{id}``; ``POST /batches``, ``GET /batches``
(``limit``, ``after``; newest first), ``GET /batches/{id}``, ``POST /batches/{id}/cancel``.

Gemini (``/v1`` — google-genai 3.6.1's default api_version for the Developer API — or
``/v1beta``): ``POST models/{model}:batchGenerateContent`` (inlined requests only),
``GET batches``, ``GET batches/{id}``, ``POST batches/{id}:cancel``, ``DELETE batches/{id}``.
A batch is a long-running Operation ``{name: "batches/ID", metadata: {@type, model,
displayName, state: "BATCH_STATE_*", createTime, updateTime, endTime, batchStats, output:
{inlinedResponses: {inlinedResponses: [...]}}}, done, response, error}``; the SDK reads
``name`` and ``metadata`` only. ``/v1/batches`` is shared by both APIs: a request that carries
google-genai's ``x-goog-api-client`` header (or a Gemini batch id) is the Gemini API's.

Life of a batch: created ``validating`` / ``BATCH_STATE_PENDING``; every ``GET`` of it is a
poll; at poll number :attr:`BatchServer.polls_to_complete` (unless :meth:`BatchServer.hold`
is on) its requests are forwarded upstream and it ends ``completed`` /
``BATCH_STATE_SUCCEEDED`` (or ``expired``, ``failed``: see the controls); before that a poll
shows ``in_progress`` / ``BATCH_STATE_RUNNING``. A batch whose input was invalid (or that
:meth:`BatchServer.reject_next` caught) shows ``failed`` at its first poll, hold or not.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

OPENAI = "openai"
GEMINI = "gemini"
CHAT_PATH = "/v1/chat/completions"
#: the message of an expired request (OpenAI's error file and Gemini's per-request error)
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
GEMINI_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
GEMINI_OUTPUT_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
)
#: google.rpc.Code for an HTTP status (Gemini's per-request ``error.code``)
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 501: 12,
             503: 14, 504: 4}
RPC_STATUS = {3: "INVALID_ARGUMENT", 16: "UNAUTHENTICATED", 7: "PERMISSION_DENIED",
              5: "NOT_FOUND", 10: "ABORTED", 8: "RESOURCE_EXHAUSTED", 1: "CANCELLED",
              13: "INTERNAL", 12: "UNIMPLEMENTED", 14: "UNAVAILABLE", 4: "DEADLINE_EXCEEDED",
              9: "FAILED_PRECONDITION"}
DEADLINE_EXCEEDED = 4
UPSTREAM_TIMEOUT_S = 60.0


def rpc_code(status: int) -> int:
    """The google.rpc.Code for an HTTP ``status`` (13, INTERNAL, for any other 5xx)."""
    return RPC_CODES.get(status, 13 if status >= 500 else 3)


def _now() -> int:
    return int(time.time())


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    """An HTTP error reply; the handler writes it in the format of the request's API."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass
class CreatedBatch:
    """One batch as it was created, for assertions: ``request_ids`` are the custom_ids
    (OpenAI) or each inlined request's ``metadata["key"]`` (else its index, as a string)
    (Gemini), in order; ``id`` is ``batch_...`` (OpenAI) or ``batches/...`` (Gemini)."""

    api: str
    id: str
    request_ids: list[str]
    display_name: str | None = None
    metadata: dict[str, Any] | None = None
    model: str | None = None
    request_metadata: list[dict[str, str] | None] = field(default_factory=list)


@dataclass
class _Line:
    """One request of a batch: its id, where it goes upstream and its body."""

    request_id: str
    path: str  # upstream path after the API root ("/chat/completions", "/v1/models/m:generateContent")
    body: dict[str, Any]
    metadata: dict[str, str] | None = None


@dataclass
class _Outcome:
    """What became of one line: ``answer`` (upstream JSON, 2xx), or ``status`` with
    ``error_body`` (a failed call), or ``expired``."""

    answer: dict[str, Any] | None = None
    status: int = 200
    error_body: dict[str, Any] | None = None
    error_message: str = ""
    expired: bool = False
    upstream_request_id: str | None = None


@dataclass
class _Batch:
    api: str
    id: str
    created_at: float
    lines: list[_Line]
    auth: dict[str, str]
    record: dict[str, Any]  # the OpenAI Batch object, or Gemini's batch metadata fields
    rejected: str | None = None  # set when creation failed (validation or reject_next)
    rejected_errors: list[dict[str, Any]] = field(default_factory=list)
    state: str = "pending"  # pending, running, processing, done
    cancel_requested: bool = False
    outcomes: list[_Outcome] | None = None
    final: str | None = None  # completed, expired, failed, cancelled


class BatchServer:
    """The server; see the module docstring. Controls and counters are plain attributes
    (read or set them between calls; they apply to batches of both APIs)."""

    def __init__(self, *, upstream_openai: str | None = None, upstream_gemini: str | None = None,
                 key: str | None = None, upstream_key: str | None = None,
                 polls_to_complete: int = 1, host: str = "127.0.0.1", port: int = 0,
                 workers: int = 8) -> None:
        self.upstream_openai = upstream_openai.rstrip("/") if upstream_openai else None
        self.upstream_gemini = upstream_gemini.rstrip("/") if upstream_gemini else None
        #: when set, a request without this key (Bearer; or x-goog-api-key / ?key= for Gemini) gets 401
        self.key = key
        #: when set, sent upstream instead of the auth headers the batch was created with
        self.upstream_key = upstream_key
        #: the poll of a batch at which it completes (1: the first GET)
        self.polls_to_complete = polls_to_complete
        #: a cancelled batch answers its first ``answer_on_cancel`` requests (partial output)
        self.answer_on_cancel = 0
        self.workers = workers
        self.host = host
        self.port = port
        # counters
        self.created: list[CreatedBatch] = []
        self.polls: dict[str, int] = {}
        self.uploads = 0
        self.upstream_calls = 0
        self.upstream_paths: list[str] = []
        # state
        self._lock = threading.RLock()
        self._held = False
        self._expire: int | None = None
        self._fail: list[tuple[int, int]] = []  # one (count, status) per batch to come
        self._reject: str | None = None
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[str, _Batch] = {}  # OpenAI id or Gemini "batches/..." name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running -------------------------------------------------------------------------

    def start(self) -> BatchServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"batch-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> BatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def gemini_url(self) -> str:
        return f"{self.root}/"

    # -- controls --------------------------------------------------------------------------

    def hold(self) -> None:
        """Keep every batch in_progress / RUNNING however often it is polled."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def expire_next(self, answered: int) -> None:
        """The next batch to complete answers its first ``answered`` requests and ends
        ``expired`` / BATCH_STATE_EXPIRED, the rest reported expired."""
        with self._lock:
            self._expire = answered

    def fail_next(self, count: int, status: int = 500, *, times: int = 1) -> None:
        """The next ``times`` batches to complete fail their first ``count`` requests with
        ``status`` (not sent upstream), the rest answered."""
        with self._lock:
            self._fail = [(count, status)] * times

    def reject_next(self, message: str) -> None:
        """The next batch created ends ``failed`` / BATCH_STATE_FAILED with ``message``."""
        with self._lock:
            self._reject = message

    # -- inspection ------------------------------------------------------------------------

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch's JSON as a GET would return it now (no poll counted)."""
        with self._lock:
            batch = self._get(batch_id)
            return self._openai_json(batch) if batch.api == OPENAI else self._gemini_json(batch)

    def file_bytes(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id][1]

    # -- state -----------------------------------------------------------------------------

    def _get(self, batch_id: str, api: str | None = None) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None or (api is not None and batch.api != api):
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _register(self, batch: _Batch, created: CreatedBatch) -> None:
        with self._lock:
            if self._reject is not None and batch.rejected is None:
                batch.rejected = self._reject
                batch.rejected_errors = [{"code": "batch_rejected", "message": self._reject,
                                          "param": None, "line": None}]
                self._reject = None
            self._batches[batch.id] = batch
            self.polls[batch.id] = 0
            self.created.append(created)

    def _poll(self, batch_id: str, api: str, *, count: bool = True) -> None:
        """Count a poll of the batch and complete it when its time has come (the upstream
        calls run outside the lock; a concurrent poll sees it still running)."""
        with self._lock:
            batch = self._get(batch_id, api)
            if count:
                self.polls[batch.id] = self.polls.get(batch.id, 0) + 1
            if batch.state in ("done", "processing"):
                return
            if batch.rejected is not None:
                batch.state, batch.final, batch.outcomes = "done", "failed", []
                self._stamp(batch, "failed")
                return
            if batch.cancel_requested:
                plan = self._plan_cancel(batch)
            elif self._held or self.polls[batch.id] < self.polls_to_complete:
                if batch.state == "pending":
                    batch.state = "running"
                    self._stamp(batch, "in_progress")
                return
            else:
                plan = self._plan_completion(batch)
            batch.state = "processing"
        outcomes, final = plan
        self._run(batch, outcomes)
        with self._lock:
            batch.outcomes, batch.final, batch.state = outcomes, final, "done"
            self._stamp(batch, final)

    def _plan_completion(self, batch: _Batch) -> tuple[list[_Outcome | None], str]:
        """Outcomes decided now (failed, expired) and None for each line to run; consumes
        the one-shot controls."""
        count = len(batch.lines)
        answered, self._expire = (count if self._expire is None else self._expire), None
        (fail, status) = self._fail.pop(0) if self._fail else (0, 500)
        outcomes: list[_Outcome | None] = []
        for index in range(count):
            if index >= answered:
                outcomes.append(_Outcome(expired=True, error_message=EXPIRED_MESSAGE))
            elif index < fail:
                outcomes.append(_Outcome(status=status, error_message=f"injected failure ({status})",
                                         error_body=_openai_error_body(status, "injected failure")))
            else:
                outcomes.append(None)
        self._stamp(batch, "in_progress")
        return outcomes, ("expired" if answered < count else "completed")

    def _plan_cancel(self, batch: _Batch) -> tuple[list[_Outcome | None], str]:
        answered = min(self.answer_on_cancel, len(batch.lines))
        return [None] * answered, "cancelled"

    def _run(self, batch: _Batch, outcomes: list[_Outcome | None]) -> None:
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(todo)))) as pool:
            results = list(pool.map(lambda i: self._forward(batch, batch.lines[i]), todo))
        for index, result in zip(todo, results, strict=True):
            outcomes[index] = result

    def _forward(self, batch: _Batch, line: _Line) -> _Outcome:
        base = self.upstream_openai if batch.api == OPENAI else self.upstream_gemini
        if base is None:
            return _Outcome(status=500, error_message=f"no upstream for {batch.api}",
                            error_body=_openai_error_body(500, f"no upstream for {batch.api}"))
        headers = {"Content-Type": "application/json", **batch.auth}
        if self.upstream_key is not None:
            headers["Authorization"] = f"Bearer {self.upstream_key}"
            if batch.api == GEMINI:
                headers["x-goog-api-key"] = self.upstream_key
        request = urllib.request.Request(base + line.path, data=json.dumps(line.body).encode(),
                                         headers=headers, method="POST")
        with self._lock:
            self.upstream_calls += 1
            self.upstream_paths.append(line.path)
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT_S) as reply:
                body = json.loads(reply.read() or b"{}")
                return _Outcome(answer=body, upstream_request_id=reply.headers.get("x-request-id"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"error": {"message": raw.decode(errors="replace"), "type": "server_error"}}
            message = str((body.get("error") or {}).get("message") or exc.reason) \
                if isinstance(body, dict) and isinstance(body.get("error"), dict) else str(exc.reason)
            return _Outcome(status=exc.code, error_body=body, error_message=message)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            message = f"upstream unreachable: {exc}"
            return _Outcome(status=500, error_message=message,
                            error_body=_openai_error_body(500, message))

    def _stamp(self, batch: _Batch, status: str) -> None:
        """Record the status change on the batch's record (timestamps)."""
        at = time.time()
        record = batch.record
        record["update_time"] = at
        if batch.api != OPENAI:
            if status in ("completed", "expired", "failed", "cancelled"):
                record["end_time"] = at
            return
        key = {"in_progress": "in_progress_at", "completed": "completed_at", "expired": "expired_at",
               "failed": "failed_at", "cancelled": "cancelled_at", "cancelling": "cancelling_at"}[status]
        if record.get(key) is None:
            record[key] = int(at)
        if status in ("completed", "expired") and record.get("finalizing_at") is None:
            record["finalizing_at"] = int(at)

    # -- OpenAI ----------------------------------------------------------------------------

    def _add_file(self, data: bytes, filename: str, purpose: str, *, count: bool) -> dict[str, Any]:
        file_id = "file-" + secrets.token_hex(12)
        obj = {"id": file_id, "object": "file", "bytes": len(data), "created_at": _now(),
               "filename": filename, "purpose": purpose, "status": "processed",
               "status_details": None, "expires_at": None}
        with self._lock:
            self._files[file_id] = (obj, data)
            if count:
                self.uploads += 1
        return obj

    def openai_upload(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        return self._add_file(data, filename, purpose, count=True)

    def openai_file(self, file_id: str, *, content: bool = False) -> Any:
        with self._lock:
            if file_id not in self._files:
                raise ApiError(404, f"No such File object: {file_id}")
            obj, data = self._files[file_id]
            return data if content else dict(obj)

    def openai_delete_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            if self._files.pop(file_id, None) is None:
                raise ApiError(404, f"No such File object: {file_id}")
        return {"id": file_id, "object": "file", "deleted": True}

    def openai_create(self, body: dict[str, Any], auth: dict[str, str]) -> dict[str, Any]:
        input_file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window")
        if not isinstance(input_file_id, str) or not endpoint or not window:
            raise ApiError(400, "input_file_id, endpoint and completion_window are required",
                           code="missing_required_parameter")
        if endpoint != CHAT_PATH:
            raise ApiError(400, f"endpoint {endpoint!r} is not supported here (only {CHAT_PATH})",
                           code="invalid_value")
        if window != "24h":
            raise ApiError(400, "completion_window must be '24h'", code="invalid_value")
        metadata = body.get("metadata")
        with self._lock:
            if input_file_id not in self._files:
                raise ApiError(404, f"No such File object: {input_file_id}")
            data = self._files[input_file_id][1]
        lines, errors, model = _parse_openai_input(data)
        batch_id = "batch_" + secrets.token_hex(12)
        created_at = _now()
        record = {
            "id": batch_id, "object": "batch", "endpoint": endpoint, "model": model,
            "errors": None, "input_file_id": input_file_id, "completion_window": window,
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": created_at, "in_progress_at": None, "expires_at": created_at + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
        }
        batch = _Batch(OPENAI, batch_id, created_at, lines, auth, record)
        if errors:
            batch.rejected = errors[0]["message"]
            batch.rejected_errors = errors
        created = CreatedBatch(OPENAI, batch_id, [line.request_id for line in lines],
                               display_name=(metadata or {}).get("display_name")
                               if isinstance(metadata, dict) else None,
                               metadata=metadata, model=model)
        self._register(batch, created)
        with self._lock:
            return self._openai_json(batch)

    def openai_get(self, batch_id: str) -> dict[str, Any]:
        self._poll(batch_id, OPENAI)
        with self._lock:
            return self._openai_json(self._get(batch_id, OPENAI))

    def openai_cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._get(batch_id, OPENAI)
            if batch.state != "done" and not batch.cancel_requested:
                batch.cancel_requested = True
                self._stamp(batch, "cancelling")
            return self._openai_json(batch)

    def openai_list(self, limit: int, after: str | None) -> dict[str, Any]:
        with self._lock:
            batches = [b for b in reversed(list(self._batches.values())) if b.api == OPENAI]
            if after is not None:
                ids = [b.id for b in batches]
                batches = batches[ids.index(after) + 1:] if after in ids else []
            page = batches[:limit]
            data = [self._openai_json(b) for b in page]
            return {"object": "list", "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": len(batches) > limit}

    def _openai_json(self, batch: _Batch) -> dict[str, Any]:
        record = batch.record
        counts = {"total": len(batch.lines), "completed": 0, "failed": 0}
        if batch.state == "done":
            if batch.final == "failed":
                record["status"] = "failed"
                record["errors"] = {"object": "list", "data": batch.rejected_errors}
                counts = {"total": 0, "completed": 0, "failed": 0}
            else:
                record["status"] = batch.final
                self._openai_files(batch)
                outcomes = [o for o in batch.outcomes or [] if o is not None]
                counts["completed"] = sum(1 for o in outcomes if o.answer is not None)
                counts["failed"] = sum(1 for o in outcomes if o.answer is None)
        elif batch.cancel_requested:
            record["status"] = "cancelling"
        elif batch.state == "processing":
            record["status"] = "finalizing"
        elif batch.state == "running":
            record["status"] = "in_progress"
        else:
            record["status"] = "validating"
        record["request_counts"] = counts
        return json.loads(json.dumps({k: v for k, v in record.items()
                                       if k != "update_time" and not k.startswith("_")}))

    def _openai_files(self, batch: _Batch) -> None:
        """Write the output and error files of a finished batch (once)."""
        record = batch.record
        if record.get("_files_written"):
            return
        record["_files_written"] = True
        output: list[str] = []
        errors: list[str] = []
        for line, outcome in zip(batch.lines, batch.outcomes or [], strict=False):
            if outcome is None:
                continue
            row_id = "batch_req_" + secrets.token_hex(12)
            request_id = outcome.upstream_request_id or "req_" + secrets.token_hex(12)
            if outcome.answer is not None:
                row = {"id": row_id, "custom_id": line.request_id,
                       "response": {"status_code": 200, "request_id": request_id,
                                    "body": outcome.answer}, "error": None}
                output.append(json.dumps(row))
            elif outcome.expired:
                row = {"id": row_id, "custom_id": line.request_id, "response": None,
                       "error": {"code": "batch_expired", "message": outcome.error_message}}
                errors.append(json.dumps(row))
            else:
                row = {"id": row_id, "custom_id": line.request_id,
                       "response": {"status_code": outcome.status, "request_id": request_id,
                                    "body": outcome.error_body}, "error": None}
                errors.append(json.dumps(row))
        if output:
            obj = self._add_file(("\n".join(output) + "\n").encode(), "batch_output.jsonl",
                                 "batch_output", count=False)
            record["output_file_id"] = obj["id"]
        if errors:
            obj = self._add_file(("\n".join(errors) + "\n").encode(), "batch_errors.jsonl",
                                 "batch_output", count=False)
            record["error_file_id"] = obj["id"]

    # -- Gemini ----------------------------------------------------------------------------

    def gemini_create(self, version: str, model: str, body: dict[str, Any],
                      auth: dict[str, str]) -> dict[str, Any]:
        spec = body.get("batch") if isinstance(body.get("batch"), dict) else {}
        source = spec.get("inputConfig") or {}
        if source.get("fileName"):
            raise ApiError(400, "this test server supports inlined requests only, not fileName")
        requests = (source.get("requests") or {}).get("requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "batch.inputConfig.requests.requests: at least one request is required")
        model = model if model.startswith("models/") else f"models/{model}"
        lines: list[_Line] = []
        for index, item in enumerate(requests):
            request = item.get("request") if isinstance(item, dict) else None
            if not isinstance(request, dict) or not isinstance(request.get("contents"), list) \
                    or not request["contents"]:
                raise ApiError(400, f"batch.inputConfig.requests.requests[{index}].request.contents "
                                    "is required")
            target = str(request.get("model") or model)
            target = target.split("/", 1)[1] if target.startswith("models/") else target
            metadata = item.get("metadata")
            key = metadata.get("key") if isinstance(metadata, dict) else None
            forward = {k: v for k, v in request.items() if k != "model"}
            lines.append(_Line(str(key) if key is not None else str(index),
                               f"/{version}/models/{target}:generateContent", forward,
                               metadata if isinstance(metadata, dict) else None))
        name = "batches/" + secrets.token_hex(10)
        now = time.time()
        display_name = spec.get("displayName")
        record = {"model": model, "display_name": display_name, "create_time": now,
                  "update_time": now, "end_time": None}
        batch = _Batch(GEMINI, name, now, lines, auth, record)
        created = CreatedBatch(GEMINI, name, [line.request_id for line in lines],
                               display_name=display_name, model=model,
                               request_metadata=[line.metadata for line in lines])
        self._register(batch, created)
        with self._lock:
            return self._gemini_json(batch)

    def gemini_get(self, name: str) -> dict[str, Any]:
        self._poll(name, GEMINI)
        with self._lock:
            return self._gemini_json(self._get(name, GEMINI))

    def gemini_cancel(self, name: str) -> dict[str, Any]:
        with self._lock:
            batch = self._get(name, GEMINI)
            if batch.state == "done" or batch.cancel_requested:
                return {}
            batch.cancel_requested = True
            if batch.state == "processing":
                return {}
        # Gemini has no "cancelling" state: the batch is cancelled now
        self._poll(name, GEMINI, count=False)
        return {}

    def gemini_delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._get(name, GEMINI)
            del self._batches[name]
        return {}

    def gemini_list(self, page_size: int, token: str | None) -> dict[str, Any]:
        with self._lock:
            batches = [b for b in reversed(list(self._batches.values())) if b.api == GEMINI]
            start = int(token) if token else 0
            page = batches[start:start + page_size]
            reply: dict[str, Any] = {"operations": [self._gemini_json(b) for b in page]}
            if start + page_size < len(batches):
                reply["nextPageToken"] = str(start + page_size)
            return reply

    def _gemini_json(self, batch: _Batch) -> dict[str, Any]:
        record = batch.record
        count = len(batch.lines)
        if batch.state == "done":
            state = {"completed": "BATCH_STATE_SUCCEEDED", "expired": "BATCH_STATE_EXPIRED",
                     "failed": "BATCH_STATE_FAILED", "cancelled": "BATCH_STATE_CANCELLED"}[
                         batch.final or "failed"]
        elif batch.state == "pending":
            state = "BATCH_STATE_PENDING"
        else:
            state = "BATCH_STATE_RUNNING"
        outcomes = [o for o in batch.outcomes or [] if o is not None]
        succeeded = sum(1 for o in outcomes if o.answer is not None)
        stats = {"requestCount": str(count), "successfulRequestCount": str(succeeded),
                 "failedRequestCount": str(len(outcomes) - succeeded),
                 "pendingRequestCount": str(count - len(outcomes) if batch.state != "done" else 0)}
        metadata: dict[str, Any] = {
            "@type": GEMINI_BATCH_TYPE, "name": batch.id, "model": record["model"],
            "state": state, "createTime": _rfc3339(record["create_time"]),
            "updateTime": _rfc3339(record["update_time"]), "batchStats": stats,
        }
        if record.get("display_name") is not None:
            metadata["displayName"] = record["display_name"]
        if record.get("end_time") is not None:
            metadata["endTime"] = _rfc3339(record["end_time"])
        reply: dict[str, Any] = {"name": batch.id, "metadata": metadata,
                                 "done": batch.state == "done"}
        if batch.state == "done" and batch.final == "failed":
            reply["error"] = {"code": 3, "message": batch.rejected or "batch failed"}
        elif batch.state == "done":
            responses = []
            for line, outcome in zip(batch.lines, batch.outcomes or [], strict=False):
                if outcome is None:
                    continue
                item: dict[str, Any] = {}
                if outcome.answer is not None:
                    item["response"] = outcome.answer
                elif outcome.expired:
                    item["error"] = {"code": DEADLINE_EXCEEDED, "message": outcome.error_message}
                else:
                    item["error"] = {"code": rpc_code(outcome.status), "message": outcome.error_message}
                if line.metadata is not None:
                    item["metadata"] = line.metadata
                responses.append(item)
            output = {"inlinedResponses": {"inlinedResponses": responses}}
            metadata["output"] = output
            reply["response"] = {"@type": GEMINI_OUTPUT_TYPE, **output}
        return json.loads(json.dumps(reply))


def _openai_error_body(status: int, message: str) -> dict[str, Any]:
    kind = ("rate_limit_error" if status == 429 else
            "invalid_request_error" if 400 <= status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _parse_openai_input(data: bytes) -> tuple[list[_Line], list[dict[str, Any]], str | None]:
    """The lines of a batch input file, the validation errors (OpenAI's ``errors.data``:
    code, message, param, line (1-based)) and the model of the first line."""
    lines: list[_Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model = None

    def bad(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": number})

    for number, raw in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            bad(number, "invalid_json_line", f"Line {number} is not valid JSON.")
            continue
        if not isinstance(row, dict):
            bad(number, "invalid_json_line", f"Line {number} is not a JSON object.")
            continue
        custom_id = row.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            bad(number, "missing_required_parameter", "custom_id is required.", "custom_id")
            continue
        if custom_id in seen:
            bad(number, "duplicate_custom_id",
                f"The custom_id for this request is a duplicate of another request: {custom_id}",
                "custom_id")
            continue
        seen.add(custom_id)
        if row.get("method") != "POST":
            bad(number, "invalid_method", "method must be POST.", "method")
            continue
        if row.get("url") != CHAT_PATH:
            bad(number, "invalid_url", f"url must be {CHAT_PATH}.", "url")
            continue
        body = row.get("body")
        if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
            bad(number, "invalid_request", "body must be an object with model and messages.", "body")
            continue
        if body.get("stream"):
            bad(number, "invalid_request", "streaming is not supported in a batch.", "body.stream")
            continue
        model = model or body["model"]
        lines.append(_Line(custom_id, "/chat/completions", body))
    if not lines and not errors:
        bad(1, "empty_file", "The input file has no requests.")
    return lines, errors, model


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name -> (filename, bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return parts


class _Handler(BaseHTTPRequestHandler):
    server_owner: BatchServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        return body

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + secrets.token_hex(8))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, api: str, error: ApiError) -> None:
        if api == GEMINI:
            code = 9 if error.status == 409 else rpc_code(error.status)
            payload = {"error": {"code": error.status, "message": error.message,
                                 "status": RPC_STATUS.get(code, "UNKNOWN")}}
        else:
            payload = _openai_error_body(error.status, error.message)
            if error.status == 401:
                payload["error"]["code"] = "invalid_api_key"
            elif error.code is not None:
                payload["error"]["code"] = error.code
        self._send(error.status, payload)

    def _is_gemini(self, query: dict[str, list[str]]) -> bool:
        return ("x-goog-api-client" in self.headers or "x-goog-api-key" in self.headers
                or "pageSize" in query or "pageToken" in query)

    def _check_key(self, api: str, query: dict[str, list[str]]) -> None:
        key = self.server_owner.key
        if key is None:
            return
        bearer = self.headers.get("Authorization", "")
        offered = bearer[7:] if bearer.startswith("Bearer ") else None
        if api == GEMINI:
            accepted = {offered, self.headers.get("x-goog-api-key"), (query.get("key") or [None])[0]}
        else:
            accepted = {offered}
        if key not in accepted:
            message = ("API key not valid. Please pass a valid API key." if api == GEMINI else
                       "Incorrect API key provided.")
            raise ApiError(401, message)

    def _auth_headers(self, api: str) -> dict[str, str]:
        names = ("Authorization", "x-goog-api-key") if api == GEMINI else ("Authorization",)
        return {name: self.headers[name] for name in names if self.headers.get(name)}

    def _dispatch(self, method: str) -> None:
        owner = self.server_owner
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        raw = self._body()
        parts = [p for p in path.split("/") if p]
        api = GEMINI if (len(parts) > 0 and parts[0] == "v1beta") or self._is_gemini(query) else OPENAI
        try:
            if not parts or parts[0] not in ("v1", "v1beta"):
                raise ApiError(404, f"no route for {method} {path}")
            version, rest = parts[0], parts[1:]
            # a known batch id decides the API of /v1/batches/{id}
            if len(rest) >= 2 and rest[0] == "batches":
                name = "batches/" + rest[1].split(":", 1)[0]
                if name in owner._batches:
                    api = GEMINI
                elif rest[1] in owner._batches:
                    api = OPENAI
            self._check_key(api, query)
            if api == GEMINI:
                status, payload = self._gemini(method, version, rest, query, raw)
            else:
                if version != "v1":
                    raise ApiError(404, f"no route for {method} {path}")
                status, payload = self._openai(method, rest, query, raw)
        except ApiError as exc:
            self._error(api, exc)
            return
        except Exception as exc:  # a bug here must still answer the client
            self._error(api, ApiError(500, f"batch server error: {type(exc).__name__}: {exc}"))
            return
        if isinstance(payload, bytes):
            self._send(status, payload, "application/octet-stream")
        else:
            self._send(status, payload)

    def _openai(self, method: str, rest: list[str], query: dict[str, list[str]],
                raw: bytes) -> tuple[int, Any]:
        owner = self.server_owner
        route = (method, *rest)
        if route == ("POST", "files"):
            ctype = self.headers.get("Content-Type", "")
            if not ctype.startswith("multipart/form-data"):
                raise ApiError(400, "files must be uploaded as multipart/form-data")
            form = _multipart(ctype, raw)
            if "file" not in form or "purpose" not in form:
                raise ApiError(400, "purpose and file are required", code="missing_required_parameter")
            filename, data = form["file"]
            return 200, owner.openai_upload(data, filename or "upload.jsonl",
                                            form["purpose"][1].decode())
        if route == ("GET", "files"):
            with owner._lock:
                data = [dict(obj) for obj, _ in reversed(list(owner._files.values()))]
            return 200, {"object": "list", "data": data, "first_id": None, "last_id": None,
                         "has_more": False}
        if len(rest) == 2 and rest[0] == "files" and method == "GET":
            return 200, owner.openai_file(rest[1])
        if len(rest) == 2 and rest[0] == "files" and method == "DELETE":
            return 200, owner.openai_delete_file(rest[1])
        if len(rest) == 3 and rest[0] == "files" and rest[2] == "content" and method == "GET":
            return 200, owner.openai_file(rest[1], content=True)
        if route == ("POST", "batches"):
            return 200, owner.openai_create(self._json_body(raw), self._auth_headers(OPENAI))
        if route == ("GET", "batches"):
            limit = int((query.get("limit") or ["20"])[0])
            if not 1 <= limit <= 100:
                raise ApiError(400, "limit must be between 1 and 100", code="invalid_value")
            return 200, owner.openai_list(limit, (query.get("after") or [None])[0])
        if len(rest) == 2 and rest[0] == "batches" and method == "GET":
            return 200, owner.openai_get(rest[1])
        if len(rest) == 3 and rest[0] == "batches" and rest[2] == "cancel" and method == "POST":
            return 200, owner.openai_cancel(rest[1])
        raise ApiError(404, f"Invalid URL ({method} /v1/{'/'.join(rest)})")

    def _gemini(self, method: str, version: str, rest: list[str], query: dict[str, list[str]],
                raw: bytes) -> tuple[int, Any]:
        owner = self.server_owner
        if method == "POST" and len(rest) == 2 and rest[0] == "models" \
                and rest[1].endswith(":batchGenerateContent"):
            model = rest[1].rsplit(":", 1)[0]
            return 200, owner.gemini_create(version, model, self._json_body(raw),
                                            self._auth_headers(GEMINI))
        if method == "GET" and rest == ["batches"]:
            size = int((query.get("pageSize") or ["50"])[0])
            return 200, owner.gemini_list(max(1, size), (query.get("pageToken") or [None])[0])
        if len(rest) == 2 and rest[0] == "batches":
            name, _, verb = rest[1].partition(":")
            name = f"batches/{name}"
            if method == "GET" and not verb:
                return 200, owner.gemini_get(name)
            if method == "POST" and verb == "cancel":
                return 200, owner.gemini_cancel(name)
            if method == "DELETE" and not verb:
                return 200, owner.gemini_delete(name)
        raise ApiError(404, f"Method not found: {method} /{version}/{'/'.join(rest)}")
