"""A strict local stand-in for OpenAI Chat Completions: it refuses what the real API refuses, per family.

``POST <any base>/chat/completions`` (``/v1/chat/completions`` for the SDK's default base), driven
by the official ``openai`` SDK unchanged::

    with StrictOpenAI(key="k") as server:
        client = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
        client.chat.completions.create(model="o3", messages=[...], max_completion_tokens=2000)

Every rule below names the public page it follows (a ``# <url>`` comment with the rule quoted);
where the reference is silent, the rule follows the error bodies users captured from the real
service, and the comment cites that capture. Error bodies have OpenAI's shape, ``{"error":
{"message", "type": "invalid_request_error", "param", "code"}}``, so the SDK raises the same
``openai.BadRequestError`` (``.code``, ``.param``) a user would get.

Model families (:data:`FAMILIES`, chosen by model name, a date suffix ignored; add more with
:meth:`StrictOpenAI.add_model`): ``chat`` (gpt-3.5-turbo, gpt-4, gpt-4o, gpt-4.1, gpt-5-chat-latest),
``o1-mini`` (o1-mini, o1-preview), ``o-series`` (o1, o3, o3-mini, o4-mini, o3-pro), ``gpt-5``
(gpt-5, -mini, -nano), ``gpt-5-pro``, ``gpt-5.1`` and ``gpt-5.2`` (5.2 and later). A name in no
family answers 404 ``model_not_found``.

What the stand-in answers: a deterministic text from :attr:`StrictOpenAI.reply` (a callable of a
:class:`ChatCall`; the default names a number derived from the messages, the seed and the choice
index, so the same request with the same ``seed`` gets the same answer). A reasoning model first
"thinks": it spends ``reasoning_tokens[effort]`` tokens (:meth:`StrictOpenAI.set_reasoning_tokens`)
out of ``max_completion_tokens`` before it writes; when the budget runs out while it thinks, the
reply is ``content: ""`` with ``finish_reason: "length"``, the failure users of reasoning models hit.
Usage is returned in full, with ``prompt_tokens_details.cached_tokens`` from a prefix cache and
``completion_tokens_details.reasoning_tokens``. Tokens are counted by ``standin_http.tokenize``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standin_http import (
    ApiError,
    PrefixCache,
    Received,
    StandIn,
    alternatives,
    count_tokens,
    cut,
    digest,
    header,
    pieces,
    tokenize,
)

API_REFERENCE = "https://platform.openai.com/docs/api-reference/chat/create"
REASONING_GUIDE = "https://platform.openai.com/docs/guides/reasoning"
CACHING_GUIDE = "https://platform.openai.com/docs/guides/prompt-caching"

#: reasoning tokens a reasoning model spends before it answers, by effort (see the module docstring)
DEFAULT_REASONING_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 256, "high": 1024,
                            "xhigh": 2048}

# The request body's fields, from the API reference (API_REFERENCE, "Request body"): a key not in
# this list is refused as an unrecognized argument (see _check_keys).
KNOWN_PARAMETERS = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice",
    "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
# API_REFERENCE, messages[].role: "developer", "system", "user", "assistant", "tool", "function"
ROLES = ("system", "assistant", "user", "function", "tool", "developer")


@dataclass(frozen=True)
class Family:
    """What a model family accepts. ``efforts``: its ``reasoning_effort`` values (empty: the
    parameter is refused); ``sampling_efforts``: the efforts at which a reasoning model takes
    sampling parameters (temperature, top_p, penalties, logprobs)."""

    name: str
    reasoning: bool
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    sampling_efforts: tuple[str, ...] = ()
    system_role: bool = True
    logprobs_forbidden: bool = False  # 403 "not allowed" rather than 400 unsupported_parameter


FAMILIES = {
    "chat": Family("chat", reasoning=False),
    # REASONING_GUIDE (beta limitations of o1-preview / o1-mini): system messages are not supported
    "o1-mini": Family("o1-mini", reasoning=True, system_role=False, logprobs_forbidden=True),
    # API_REFERENCE, reasoning_effort: "All models before gpt-5.1 default to medium reasoning
    # effort, and do not support none." For the o-series (o1 era): "Currently supported values
    # are low, medium, and high."
    "o-series": Family("o-series", reasoning=True, efforts=("low", "medium", "high"),
                       default_effort="medium", logprobs_forbidden=True),
    # API_REFERENCE (gpt-5 era), reasoning_effort: "Currently supported values are minimal, low,
    # medium, and high."
    "gpt-5": Family("gpt-5", reasoning=True, efforts=("minimal", "low", "medium", "high"),
                    default_effort="medium"),
    # API_REFERENCE: "The gpt-5-pro model defaults to (and only supports) high reasoning effort."
    "gpt-5-pro": Family("gpt-5-pro", reasoning=True, efforts=("high",), default_effort="high"),
    # API_REFERENCE: "gpt-5.1 defaults to none, which does not perform reasoning. The supported
    # reasoning values for gpt-5.1 are none, low, medium, and high."
    # https://platform.openai.com/docs/guides/latest-model ("GPT-5.2 parameter compatibility"):
    # "The following parameters are only supported when using GPT-5.2 with reasoning effort set
    # to none: temperature, top_p, logprobs. Requests to GPT-5.2 or GPT-5.1 with any other
    # reasoning effort setting, or to older GPT-5 models (e.g., gpt-5, gpt-5-mini, gpt-5-nano)
    # that include these fields will raise an error."
    "gpt-5.1": Family("gpt-5.1", reasoning=True, efforts=("none", "low", "medium", "high"),
                      default_effort="none", sampling_efforts=("none",)),
    # API_REFERENCE: "xhigh is supported for all models after gpt-5.1-codex-max."
    "gpt-5.2": Family("gpt-5.2", reasoning=True, efforts=("none", "low", "medium", "high", "xhigh"),
                      default_effort="none", sampling_efforts=("none",)),
}

_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{4}$")
_MODEL_FAMILIES = [(re.compile(pattern), family) for pattern, family in (
    (r"gpt-5(\.\d+)?-chat(-latest)?", "chat"),
    (r"gpt-5-pro", "gpt-5-pro"),
    (r"gpt-5\.1(-mini|-nano)?", "gpt-5.1"),
    (r"gpt-5\.([2-9]|\d{2,})(-mini|-nano|-pro)?", "gpt-5.2"),
    (r"gpt-5(-mini|-nano)?", "gpt-5"),
    (r"o1-(mini|preview)", "o1-mini"),
    (r"o[134](-mini|-pro)?", "o-series"),
    (r"gpt-4o(-mini)?|chatgpt-4o-latest|gpt-4\.1(-mini|-nano)?|gpt-4(-turbo)?|gpt-3\.5-turbo(-16k)?",
     "chat"),
)]


@dataclass(frozen=True)
class ChatCall:
    """One choice to answer: the model, its family, the messages (``content`` flattened to
    text), the seed, which choice (0..n-1) and the whole request body."""

    model: str
    family: str
    messages: list[dict[str, str]]
    seed: int | None
    index: int
    body: dict[str, Any] = field(repr=False)

    @property
    def prompt(self) -> str:
        """The last user (or developer/system) message's text."""
        for message in reversed(self.messages):
            if message["role"] in ("user", "developer", "system"):
                return message["content"]
        return ""


def default_reply(call: ChatCall) -> str:
    """``"You asked: <first words>. The answer is N."``, N in 0..999 from the messages, the
    seed and the choice index (the same request and seed give the same N)."""
    number = digest(call.messages, call.seed, call.index) % 1000
    return f"You asked: {cut(call.prompt, 12)}. The answer is {number}."


def _error(message: str, param: str | None = None, code: str | None = None, *, status: int = 400,
           kind: str = "invalid_request_error") -> ApiError:
    # https://platform.openai.com/docs/guides/error-codes: errors come as {"error": {"message",
    # "type", "param", "code"}}
    return ApiError(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "null")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _listing(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _unsupported_parameter(name: str, extra: str = "") -> ApiError:
    return _error(f"Unsupported parameter: '{name}' is not supported with this model.{extra}",
                  name, "unsupported_parameter")


class StrictOpenAI(StandIn):
    """The server. ``key``: when set, a request without ``Authorization: Bearer <key>`` gets
    401. ``reply``: the answer text of a :class:`ChatCall`. Read what it received from
    :attr:`received` / :attr:`bodies`; :attr:`cache` is the prompt cache (``cache.clear()``)."""

    name = "strict-openai"

    def __init__(self, *, key: str | None = None, reply: Callable[[ChatCall], str] | None = None,
                 reasoning_tokens: dict[str, int] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.key = key
        self.reply: Callable[[ChatCall], str] = reply or default_reply
        self.reasoning_tokens = {**DEFAULT_REASONING_TOKENS, **(reasoning_tokens or {})}
        self.models: dict[str, str] = {}  # extra model name -> family name
        self._model_reasoning: dict[str, dict[str, int]] = {}
        # CACHING_GUIDE: "Caching is available for prompts containing 1024 tokens or more, with
        # cache hits occurring in increments of 128 tokens. Therefore, the number of cached tokens
        # in a request will always fall within the following sequence: 1024, 1152, 1280, 1408".
        self.cache = PrefixCache(min_tokens=1024, step=128)

    @property
    def url(self) -> str:
        """The SDK's ``base_url``."""
        return f"{self.root}/v1"

    def add_model(self, name: str, family: str) -> None:
        """Serve model ``name`` with the rules of ``family`` (a key of :data:`FAMILIES`)."""
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
        self.models[name] = family

    def set_reasoning_tokens(self, model: str | None = None, **by_effort: int) -> None:
        """The reasoning tokens spent per effort, for ``model`` or (None) for every model."""
        if model is None:
            self.reasoning_tokens.update(by_effort)
        else:
            self._model_reasoning.setdefault(model, {}).update(by_effort)

    def family_of(self, model: str) -> Family | None:
        if model in self.models:
            return FAMILIES[self.models[model]]
        base = _DATE.sub("", model)
        for pattern, family in _MODEL_FAMILIES:
            if pattern.fullmatch(base):
                return FAMILIES[family]
        return None

    def bad_json(self, raw: bytes) -> ApiError:
        return _error("We could not parse the JSON body of your request. (HINT: This likely means "
                      "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                      "payload, but what was sent was not valid JSON.)")

    # -- the request -------------------------------------------------------------------------

    def respond(self, request: Received) -> tuple[int, Any]:
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            raise _error(f"Invalid URL ({request.method} {request.path})", status=404)
        self._check_key(request)
        body = request.body
        if not isinstance(body, dict):
            raise self.bad_json(b"")
        # a null optional parameter is the same as leaving it out (API_REFERENCE: "nullable")
        body = {k: v for k, v in body.items() if v is not None or k in ("model", "messages")}
        model = body.get("model")
        if not isinstance(model, str) or not model:
            # the real API's reply to a body without a model (param and code null)
            raise _error("you must provide a model parameter")
        family = self.family_of(model)
        self._check_keys(body, family)
        if family is None:
            # https://platform.openai.com/docs/guides/error-codes (404 "model does not exist")
            raise _error(f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found", status=404)
        messages = self._messages(body, family)
        self._check_types(body)
        effort = self._check_family(body, family)
        return 200, self._completion(body, model, family, effort, messages)

    def _check_key(self, request: Received) -> None:
        if self.key is None:
            return
        # https://platform.openai.com/docs/api-reference/authentication: "API keys should be
        # provided via HTTP Bearer authentication. Authorization: Bearer OPENAI_API_KEY"
        auth = header(request.headers, "Authorization") or ""
        if not auth.startswith("Bearer ") or not auth[7:]:
            raise _error("You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                         "YOUR_KEY).", status=401)
        if auth[7:] != self.key:
            # https://platform.openai.com/docs/guides/error-codes: "401 - Incorrect API key
            # provided"; the real message shows a masked key, so does this one
            offered = auth[7:]
            raise _error(f"Incorrect API key provided: {offered[:3]}***{offered[-4:]}. You can find "
                         "your API key at https://platform.openai.com/account/api-keys.",
                         code="invalid_api_key", status=401)

    def _check_keys(self, body: dict[str, Any], family: Family | None) -> None:
        # The API refuses arguments it does not know, and a non-reasoning model refuses
        # reasoning_effort the same way; captured replies (param and code null):
        # https://github.com/xlinx/sd-webui-decadetw-auto-prompt-llm/issues/29 ("Unrecognized
        # request argument supplied: top_k"), https://github.com/davidmigloz/langchain_dart/issues/712
        # (gpt-4o-mini: "Unrecognized request argument supplied: reasoning_effort")
        for key in body:
            known = key in KNOWN_PARAMETERS
            if key == "reasoning_effort" and family is not None and not family.reasoning:
                known = False
            if not known:
                raise _error(f"Unrecognized request argument supplied: {key}")

    def _messages(self, body: dict[str, Any], family: Family) -> list[dict[str, str]]:
        # API_REFERENCE, messages: "A list of messages comprising the conversation so far."
        # (required, array, at least one item); roles and content types per item.
        messages = body.get("messages")
        if "messages" not in body:
            raise _error("Missing required parameter: 'messages'.", "messages",
                         "missing_required_parameter")
        if not isinstance(messages, list):
            raise _error(f"Invalid type for 'messages': expected an array of objects, but got "
                         f"{_kind(messages)} instead.", "messages", "invalid_type")
        if not messages:
            raise _error("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                         "but got an empty array instead.", "messages", "empty_array")
        flat: list[dict[str, str]] = []
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise _error(f"Invalid type for '{where}': expected an object, but got "
                             f"{_kind(message)} instead.", where, "invalid_type")
            role = message.get("role")
            if role is None:
                raise _error(f"Missing required parameter: '{where}.role'.", f"{where}.role",
                             "missing_required_parameter")
            if role not in ROLES:
                raise _error(f"Invalid value: {_show(role)}. Supported values are: {_listing(ROLES)}.",
                             f"{where}.role", "invalid_value")
            if role == "system" and not family.system_role:
                # REASONING_GUIDE (o1-preview / o1-mini beta): system messages unsupported
                raise _error(f"Unsupported value: '{where}.role' does not support 'system' with "
                             "this model.", f"{where}.role", "unsupported_value")
            flat.append({"role": role, "content": self._text(message.get("content"), where, role)})
        return flat

    def _text(self, content: Any, where: str, role: str) -> str:
        # API_REFERENCE: content is "string or array" of content parts ({"type": "text", "text"})
        if isinstance(content, str):
            return content
        if content is None and role in ("assistant", "tool", "function"):
            return ""
        if isinstance(content, list) and all(isinstance(p, dict) for p in content):
            return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
        raise _error(f"Invalid type for '{where}.content': expected one of a string or array of "
                     f"objects, but got {_kind(content)} instead.", f"{where}.content", "invalid_type")

    def _check_types(self, body: dict[str, Any]) -> None:
        # API_REFERENCE ranges: temperature "between 0 and 2", top_p (0..1), presence_penalty and
        # frequency_penalty "Number between -2.0 and 2.0", top_logprobs "between 0 and 20", n >= 1,
        # stop "Up to 4 sequences"; types as the reference gives them. The wording and codes
        # (invalid_type, decimal_above_max_value, integer_below_min_value, ...) follow the real
        # API's validation replies as users captured them; not every message is verified.
        for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2),
                                ("frequency_penalty", -2, 2)):
            if name in body:
                value = body[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise _error(f"Invalid type for '{name}': expected a decimal, but got "
                                 f"{_kind(value)} instead.", name, "invalid_type")
                if value < low:
                    raise _error(f"Invalid '{name}': decimal below minimum value. Expected a value "
                                 f">= {low}, but got {value} instead.", name, "decimal_below_min_value")
                if value > high:
                    raise _error(f"Invalid '{name}': decimal above maximum value. Expected a value "
                                 f"<= {high}, but got {value} instead.", name, "decimal_above_max_value")
        for name, low, high in (("seed", None, None), ("n", 1, 128), ("max_tokens", 1, None),
                                ("max_completion_tokens", 1, None), ("top_logprobs", 0, 20)):
            if name in body:
                value = body[name]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise _error(f"Invalid type for '{name}': expected an integer, but got "
                                 f"{_kind(value)} instead.", name, "invalid_type")
                if low is not None and value < low:
                    raise _error(f"Invalid '{name}': integer below minimum value. Expected a value "
                                 f">= {low}, but got {value} instead.", name, "integer_below_min_value")
                if high is not None and value > high:
                    raise _error(f"Invalid '{name}': integer above maximum value. Expected a value "
                                 f"<= {high}, but got {value} instead.", name, "integer_above_max_value")
        if "logprobs" in body and not isinstance(body["logprobs"], bool):
            raise _error(f"Invalid type for 'logprobs': expected a boolean, but got "
                         f"{_kind(body['logprobs'])} instead.", "logprobs", "invalid_type")
        if "top_logprobs" in body and not body.get("logprobs"):
            # API_REFERENCE, top_logprobs: "logprobs must be set to true if this parameter is used."
            raise _error("The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
                         "top_logprobs")
        stop = body.get("stop")
        if stop is not None:
            stops = [stop] if isinstance(stop, str) else stop
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise _error(f"Invalid type for 'stop': expected one of a string or array of "
                             f"strings, but got {_kind(stop)} instead.", "stop", "invalid_type")
            if len(stops) > 4:
                raise _error(f"Invalid 'stop': array too long. Expected an array with maximum "
                             f"length 4, but got an array with length {len(stops)} instead.",
                             "stop", "array_above_max_length")
        if body.get("stream"):
            raise _error("The strict stand-in does not stream; send stream: false.", "stream")

    def _check_family(self, body: dict[str, Any], family: Family) -> str | None:
        """Refuse what the family refuses; the effective reasoning effort (None: not reasoning)."""
        if not family.reasoning:
            return None
        if "max_tokens" in body:
            # API_REFERENCE, max_tokens: "This value is now deprecated in favor of
            # max_completion_tokens, and is not compatible with o-series models."
            raise _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
        effort = body.get("reasoning_effort", family.default_effort)
        if "reasoning_effort" in body:
            if not family.efforts:
                raise _unsupported_parameter("reasoning_effort")
            if effort not in family.efforts:
                # API_REFERENCE, reasoning_effort (per-model values above); captured wording:
                # https://github.com/Kilo-Org/cloud/pull/3807 ("Unsupported value:
                # 'reasoning_effort' does not support 'none' with this model. Supported values
                # are: 'minimal', 'low', 'medium', and 'high'.")
                raise _error(f"Unsupported value: 'reasoning_effort' does not support "
                             f"{_show(effort)} with this model. Supported values are: "
                             f"{_listing(family.efforts)}.", "reasoning_effort", "unsupported_value")
        if effort not in family.sampling_efforts:
            # REASONING_GUIDE and the GPT-5.2 page quoted at FAMILIES: sampling parameters are
            # refused while the model reasons. Only a non-default value is refused: "Only the
            # default (1) value is supported." Captured replies: temperature ->
            # https://github.com/gabrii/Cursor-Azure-GPT-5/issues/33 (unsupported_value);
            # top_p -> https://github.com/lfnovo/open-notebook/issues/107 and presence_penalty ->
            # https://github.com/nextai-translator/nextai-translator/issues/1781 (unsupported_parameter)
            if body.get("temperature", 1) != 1:
                raise _error(f"Unsupported value: 'temperature' does not support "
                             f"{body['temperature']} with this model. Only the default (1) value "
                             "is supported.", "temperature", "unsupported_value")
            for name, default in (("top_p", 1), ("presence_penalty", 0), ("frequency_penalty", 0)):
                if body.get(name, default) != default:
                    raise _unsupported_parameter(name)
            if body.get("logprobs"):
                if family.logprobs_forbidden:
                    # captured on o4-mini: https://github.com/confident-ai/deepeval/pull/2184
                    raise _error("You are not allowed to request logprobs from this model", status=403)
                raise _unsupported_parameter("logprobs")
        for name in ("stop", "logit_bias"):
            # captured on o3/gpt-5-class models: "Unsupported parameter: 'stop' is not supported
            # with this model." (nemoguardrails' openai_reasoning notes: reasoning models "reject
            # temperature / stop"); logit_bias is a REASONING_GUIDE limitation
            if name in body:
                raise _unsupported_parameter(name)
        return effort

    # -- the answer --------------------------------------------------------------------------

    def _reasoning_for(self, model: str, effort: str | None) -> int:
        if effort is None:
            return 0
        table = {**self.reasoning_tokens, **self._model_reasoning.get(model, {})}
        return int(table.get(effort, 0))

    def _completion(self, body: dict[str, Any], model: str, family: Family, effort: str | None,
                    messages: list[dict[str, str]]) -> dict[str, Any]:
        prompt: list[str] = []
        for message in messages:
            prompt += ["<|start|>", message["role"], *tokenize(message["content"]), "<|end|>"]
        prompt += ["<|start|>", "assistant"]
        # CACHING_GUIDE: "Prompt Caching is enabled for all recent models, gpt-4o and newer."
        older = model.startswith(("gpt-3.5", "gpt-4")) and not model.startswith(("gpt-4o", "gpt-4.1"))
        cached = 0 if older else self.cache.hit(model, prompt)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        stops = body.get("stop")
        stops = [stops] if isinstance(stops, str) else (stops or [])
        choices, visible_total, reasoning_total = [], 0, 0
        for index in range(body.get("n", 1)):
            call = ChatCall(model=model, family=family.name, messages=messages,
                            seed=body.get("seed"), index=index, body=body)
            answer = self.reply(call)
            reasoning = self._reasoning_for(model, effort)
            # API_REFERENCE, max_completion_tokens: "An upper bound for the number of tokens that
            # can be generated for a completion, including visible output tokens and reasoning
            # tokens." REASONING_GUIDE: running out "might occur before any visible output tokens
            # are produced, meaning you could incur costs for input and reasoning tokens without
            # receiving a visible response."
            room = None if limit is None else limit - reasoning
            if room is not None and room <= 0:
                reasoning, text, finish = limit, "", "length"
            elif room is not None and count_tokens(answer) > room:
                text, finish = cut(answer, room), "length"
            else:
                text, finish = answer, "stop"
            hits = [text.find(s) for s in stops if s in text]
            if hits:  # API_REFERENCE, stop: "The returned text will not contain the stop sequence."
                text, finish = text[: min(hits)], "stop"
            visible_total += count_tokens(text)
            reasoning_total += reasoning
            choices.append({
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": _logprobs(text, body.get("top_logprobs", 0)) if body.get("logprobs") else None,
                "finish_reason": finish,
            })
        completion = visible_total + reasoning_total
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            # API_REFERENCE, the chat completion object's usage: prompt_tokens, completion_tokens,
            # total_tokens, prompt_tokens_details.cached_tokens,
            # completion_tokens_details.reasoning_tokens
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion,
                "total_tokens": len(prompt) + completion,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reasoning_total, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_strict_standin",
        }


def _logprobs(text: str, top: int) -> dict[str, Any]:
    """``logprobs.content`` for ``text``: each token chosen at -0.05, with ``top`` entries in
    ``top_logprobs`` (itself, then ``standin_http.alternatives`` at -3, -4, ...)."""
    content = []
    for token in pieces(text):
        ranked = [(token, -0.05)] + [(alt, -3.0 - j) for j, alt in enumerate(alternatives(token, top - 1))]
        content.append({"token": token, "logprob": -0.05, "bytes": list(token.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                         for t, lp in ranked[:top]]})
    return {"content": content, "refusal": None}
