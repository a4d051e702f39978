"""A strict local stand-in for Gemini's generateContent: it refuses what the real API refuses, per family.

``POST /{v1,v1beta}/models/{model}:generateContent`` (google-genai 3.x uses ``v1`` for the
Developer API), driven by the official ``google-genai`` SDK unchanged::

    with StrictGemini(key="k") as server:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.url))
        client.models.generate_content(model="gemini-2.5-flash", contents="2+2?")

The key is read from ``x-goog-api-key``, ``?key=`` or (as a gateway takes it, and fairspec's
``bearer_auth`` sends it) ``Authorization: Bearer``. Every rule names its public page (a ``#
<url>`` comment quoting it); where the page is silent, the error body users captured from the real
service, cited beside it. Errors have Google's shape, ``{"error": {"code": 400, "message",
"status": "INVALID_ARGUMENT"}}``, so the SDK raises the ``genai.errors.ClientError`` a user gets.

Families (:data:`FAMILIES`, by model name; :meth:`StrictGemini.add_model` adds names): ``classic``
(Gemini 1.x, 2.0: no thinking), ``2.5-pro``, ``2.5-flash``, ``2.5-flash-lite``, ``3-pro``,
``3.1-pro`` and ``3-flash``. A name in no family answers 404 NOT_FOUND.

Thinking: a thinking model spends thought tokens out of ``maxOutputTokens`` before it writes
(:attr:`StrictGemini.thinking_tokens`: by level, and ``"dynamic"`` for a dynamic budget; an
explicit budget caps that need). When they fill ``maxOutputTokens`` the candidate comes back with
no parts and ``finishReason: MAX_TOKENS`` (the empty reply of python-genai #782).
``usageMetadata`` is given in full: promptTokenCount, candidatesTokenCount, thoughtsTokenCount,
cachedContentTokenCount (implicit caching of repeated prefixes), totalTokenCount; zero counts are
left out, as proto3 JSON does. Tokens are counted by ``standin_http.tokenize``.
"""

from __future__ import annotations

import re
import secrets
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

API_REFERENCE = "https://ai.google.dev/api/generate-content"
THINKING_GUIDE = "https://ai.google.dev/gemini-api/docs/thinking"
CACHING_GUIDE = "https://ai.google.dev/gemini-api/docs/caching"

DEFAULT_THINKING_TOKENS = {"dynamic": 1024, "minimal": 32, "low": 256, "medium": 512, "high": 1024}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}

# API_REFERENCE, GenerateContentRequest and GenerationConfig fields (proto JSON also takes each
# field's snake_case name; see _camel). Anything else is "Cannot find field".
REQUEST_FIELDS = frozenset({"model", "contents", "tools", "toolConfig", "safetySettings",
                            "systemInstruction", "generationConfig", "cachedContent", "serviceTier"})
CONFIG_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "_responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers",
    "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
})
THINKING_FIELDS = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
LEVELS = ("minimal", "low", "medium", "high")


@dataclass(frozen=True)
class Family:
    """What a Gemini family accepts. ``budget``: the (low, high) range of a positive
    thinkingBudget; ``can_disable``: budget 0 allowed; ``default``: ``"off"``, ``"dynamic"`` or a
    level; ``levels``: the thinkingLevel values (empty: thinkingLevel refused)."""

    name: str
    thinking: bool
    budget: tuple[int, int] = (0, 0)
    can_disable: bool = False
    default: str = "off"
    levels: tuple[str, ...] = ()
    cache_min: int | None = None
    output_limit: int = 65536
    logprobs: bool = True


FAMILIES = {
    # THINKING_GUIDE: "The thinkingBudget is only supported in Gemini 2.5 Flash, 2.5 Pro, and 2.5
    # Flash-Lite." API_REFERENCE, thinkingConfig: "An error will be returned if this field is set
    # for models that don't support thinking." Implicit caching is a 2.5-and-later feature.
    "classic": Family("classic", thinking=False, output_limit=8192),
    # THINKING_GUIDE table: "2.5 Pro | Dynamic thinking: Model decides when and how much to think |
    # 128 to 32768 | N/A: Cannot disable thinking | thinkingBudget = -1"
    # CACHING_GUIDE: "The minimum input token count for implicit caching is 1,024 for 2.5 Flash
    # and 2,048 for 2.5 Pro."
    "2.5-pro": Family("2.5-pro", thinking=True, budget=(128, 32768), default="dynamic", cache_min=2048),
    # "2.5 Flash | Dynamic thinking ... | 0 to 24576 | thinkingBudget = 0 | thinkingBudget = -1"
    "2.5-flash": Family("2.5-flash", thinking=True, budget=(1, 24576), can_disable=True,
                        default="dynamic", cache_min=1024),
    # "2.5 Flash Lite | Model does not think | 512 to 24576 | thinkingBudget = 0 | thinkingBudget = -1"
    "2.5-flash-lite": Family("2.5-flash-lite", thinking=True, budget=(512, 24576), can_disable=True,
                             default="off", cache_min=1024),
    # THINKING_GUIDE, thinking levels (Gemini 3): Gemini 3 Pro takes "low" and "high", default
    # "high", and "You cannot disable thinking for Gemini 3 Pro"; Gemini 3 Flash takes "minimal",
    # "low", "medium", "high" (default "high"); "thinkingBudget is accepted for backwards
    # compatibility". https://ai.google.dev/gemini-api/docs/gemini-3: "You cannot use both
    # thinking_level and the legacy thinking_budget parameter in the same request. Doing so will
    # return a 400 error." Logprobs: not served for Gemini 3 (captured:
    # https://github.com/GoogleCloudPlatform/generative-ai/issues/2947). CACHING_GUIDE's table of
    # minimum tokens: 4,096 for Gemini 3 Pro, 1,024 for Gemini 3 Flash. The legacy budget's range
    # on Gemini 3 is not documented: taken as the 2.5 model of the same tier (an assumption).
    "3-pro": Family("3-pro", thinking=True, budget=(128, 32768), default="high", levels=("low", "high"),
                    cache_min=4096, logprobs=False),
    "3.1-pro": Family("3.1-pro", thinking=True, budget=(128, 32768), default="high",
                      levels=("low", "medium", "high"), cache_min=4096, logprobs=False),
    "3-flash": Family("3-flash", thinking=True, budget=(1, 24576), can_disable=True, default="high",
                      levels=LEVELS, cache_min=1024, logprobs=False),
}
_MODEL_FAMILIES = [(re.compile(pattern), family) for pattern, family in (
    (r"gemini-(1\.0|1\.5|2\.0)-.+", "classic"),
    (r"gemini-2\.5-flash-lite.*", "2.5-flash-lite"),
    (r"gemini-2\.5-flash.*", "2.5-flash"),
    (r"gemini-2\.5-pro.*", "2.5-pro"),
    (r"gemini-3(\.\d+)?-flash.*", "3-flash"),
    (r"gemini-3\.1-pro.*", "3.1-pro"),
    (r"gemini-3(\.\d+)?-pro.*", "3-pro"),
)]
_PATH = re.compile(r".*/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent")


@dataclass(frozen=True)
class GeminiCall:
    """One candidate to answer: the model, its family, the system instruction, the contents
    (``{"role", "text"}``), the seed, which candidate and the whole request body."""

    model: str
    family: str
    system: str | None
    contents: list[dict[str, str]]
    seed: int | None
    index: int
    body: dict[str, Any] = field(repr=False)

    @property
    def prompt(self) -> str:
        users = [c["text"] for c in self.contents if c["role"] == "user"]
        return users[-1] if users else ""


def default_reply(call: GeminiCall) -> str:
    """``"You asked: <first words>. The answer is N."`` (N from contents, seed and index)."""
    number = digest(call.system, call.contents, call.seed, call.index) % 1000
    return f"You asked: {cut(call.prompt, 12)}. The answer is {number}."


def _error(message: str, status: int = 400, details: list[dict[str, Any]] | None = None) -> ApiError:
    # https://ai.google.dev/gemini-api/docs/troubleshooting: 400 INVALID_ARGUMENT "The request body
    # is malformed", 403 PERMISSION_DENIED, 404 NOT_FOUND; the body is a google.rpc.Status
    error: dict[str, Any] = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return ApiError(status, {"error": error})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _fields(obj: dict[str, Any], known: frozenset[str], where: str) -> dict[str, Any]:
    """``obj`` with camelCase keys; an unknown key is a 400 as the real API words it."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in known:
            at = f" at '{where}'" if where else ""
            message = f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            raise _error(message, details=[{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                            "fieldViolations": [{"field": where, "description": message}]}])
        out[name] = value
    return out


def _invalid(where: str, proto_type: str, value: Any) -> ApiError:
    # captured: "Invalid value at 'generation_config.thinking_config.thinking_budget'
    # (TYPE_INT32), 19660.800000000003" (https://github.com/egoist/chatwise-releases/issues/536)
    return _error(f"Invalid value at '{where}' ({proto_type}), {value}")


class StrictGemini(StandIn):
    """The server. ``key``: when set, a request without it gets Google's auth error.
    ``reply``: the answer text of a :class:`GeminiCall`. ``thinking_tokens``: thought tokens
    spent per level and for ``"dynamic"`` (see :meth:`set_thinking_tokens`)."""

    name = "strict-gemini"

    def __init__(self, *, key: str | None = None, reply: Callable[[GeminiCall], str] | None = None,
                 thinking_tokens: dict[str, int] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.key = key
        self.reply: Callable[[GeminiCall], str] = reply or default_reply
        self.thinking_tokens = {**DEFAULT_THINKING_TOKENS, **(thinking_tokens or {})}
        self.models: dict[str, str] = {}
        self._model_thinking: dict[str, dict[str, int]] = {}
        self._caches = {family: PrefixCache(min_tokens=spec.cache_min)
                        for family, spec in FAMILIES.items() if spec.cache_min is not None}

    @property
    def url(self) -> str:
        """The SDK's ``HttpOptions.base_url``."""
        return f"{self.root}/"

    def add_model(self, name: str, family: str) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
        self.models[name] = family

    def set_thinking_tokens(self, model: str | None = None, **by_kind: int) -> None:
        """Thought tokens spent per level / ``dynamic``, for ``model`` or (None) every model."""
        if model is None:
            self.thinking_tokens.update(by_kind)
        else:
            self._model_thinking.setdefault(model, {}).update(by_kind)

    def clear_cache(self) -> None:
        for cache in self._caches.values():
            cache.clear()

    def family_of(self, model: str) -> Family | None:
        if model in self.models:
            return FAMILIES[self.models[model]]
        for pattern, family in _MODEL_FAMILIES:
            if pattern.fullmatch(model):
                return FAMILIES[family]
        return None

    def bad_json(self, raw: bytes) -> ApiError:
        return _error(f"Invalid JSON payload received. Unexpected token.\n{raw[:40]!r}")

    # -- the request -------------------------------------------------------------------------

    def respond(self, request: Received) -> tuple[int, Any]:
        match = _PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            raise _error(f"Method not found: {request.method} {request.path}", 404)
        version, model = match.groups()
        self._check_key(request)
        family = self.family_of(model)
        if family is None:
            raise _error(f"models/{model} is not found for API version {version}, or is not "
                         "supported for generateContent. Call ListModels to see the list of "
                         "available models and their supported methods.", 404)
        body = request.body if isinstance(request.body, dict) else {}
        body = _fields(body, REQUEST_FIELDS, "")
        config = _fields(body.get("generationConfig") or {}, CONFIG_FIELDS, "generation_config")
        system, contents = self._contents(body)
        self._check_config(config, model, family)
        thoughts = self._thoughts(config, model, family)
        return 200, self._response(model, family, system, contents, config, thoughts, body)

    def _check_key(self, request: Received) -> None:
        if self.key is None:
            return
        # https://ai.google.dev/gemini-api/docs/api-key: the key goes in the x-goog-api-key
        # header (or the key query parameter)
        bearer = header(request.headers, "Authorization") or ""
        offered = {header(request.headers, "x-goog-api-key"), (request.query.get("key") or [None])[0],
                   bearer[7:] if bearer.startswith("Bearer ") else None} - {None, ""}
        if not offered:
            raise _error("Method doesn't allow unregistered callers (callers without established "
                         "identity). Please use API Key or other form of API consumer identity to "
                         "call this API.", 403)
        if self.key not in offered:
            raise _error("API key not valid. Please pass a valid API key.", 400, details=[{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])

    def _contents(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, str]]]:
        # API_REFERENCE, contents: "Required. The content of the current conversation with the
        # model." Content.role: "Must be either 'user' or 'model'." Wording as the API answers.
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _error("* GenerateContentRequest.contents: contents is not specified\n")
        flat = []
        for i, content in enumerate(contents):
            role = content.get("role", "user") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                raise _error("Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise _error(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not "
                             "be empty.\n")
            flat.append({"role": role, "text": "".join(str(p.get("text", "")) for p in parts
                                                       if isinstance(p, dict))})
        system = body.get("systemInstruction")
        text = None
        if isinstance(system, dict):
            text = "".join(str(p.get("text", "")) for p in system.get("parts") or [] if isinstance(p, dict))
        return text, flat

    def _check_config(self, config: dict[str, Any], model: str, family: Family) -> None:
        def number(name: str, low: float, high: float) -> None:
            value = config.get(name)
            if value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _invalid(f"generation_config.{_snake(name)}", "TYPE_FLOAT", value)
            if not low <= value <= high:
                raise _error(f"* GenerateContentRequest.generation_config.{_snake(name)}: "
                             f"{_snake(name)} must be in the range [{low}, {high}]\n")

        # API_REFERENCE, GenerationConfig.temperature: "Values can range from [0.0, 2.0]."
        number("temperature", 0.0, 2.0)
        # GenerationConfig.topP: a nucleus probability mass, [0.0, 1.0]
        number("topP", 0.0, 1.0)
        for name in ("seed", "candidateCount", "maxOutputTokens", "topK", "logprobs"):
            value = config.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _invalid(f"generation_config.{_snake(name)}", "TYPE_INT32", value)
        # GenerationConfig.candidateCount: "Number of generated responses to return. If unset, this
        # will default to 1." (the API serves at most 8; wording of the error not verified)
        count = config.get("candidateCount", 1)
        if not 1 <= count <= 8:
            raise _error("* GenerateContentRequest.generation_config.candidate_count: candidate_count "
                         "must be in the range [1, 8]\n")
        limit = config.get("maxOutputTokens")
        if limit is not None and not 1 <= limit <= family.output_limit:
            # the model's output limit (https://ai.google.dev/gemini-api/docs/models, "Output token
            # limit"); wording as Vertex AI answers it
            raise _error(f"Unable to submit request because it has a maxOutputTokens value of {limit} "
                         f"but the supported range is from 1 (inclusive) to {family.output_limit + 1} "
                         "(exclusive). Update the value and try again.")
        stops = config.get("stopSequences") or []
        if len(stops) > 5:
            # GenerationConfig.stopSequences: "The set of character sequences (up to 5) that will
            # stop output generation."
            raise _error("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop "
                         "sequences are allowed\n")
        if config.get("logprobs") is not None or config.get("responseLogprobs"):
            if not family.logprobs:
                # captured: "Logprobs is not enabled for models/gemini-2.5-pro"
                # (https://github.com/mscraftsman/generative-ai/issues/135)
                raise _error(f"Logprobs is not enabled for models/{model}")
            # GenerationConfig.logprobs: "Only valid if responseLogprobs=True. ... The number must
            # be in the range of [0, 20]." (error wording not verified)
            if config.get("logprobs") is not None and not config.get("responseLogprobs"):
                raise _error("logprobs can only be set when response_logprobs is true.")
            if not 0 <= config.get("logprobs", 0) <= 20:
                raise _error("* GenerateContentRequest.generation_config.logprobs: logprobs must be in "
                             "the range [0, 20]\n")

    def _thoughts(self, config: dict[str, Any], model: str, family: Family) -> int:
        """Check thinkingConfig; the thought tokens this request spends (before the output cap)."""
        raw = config.get("thinkingConfig")
        if raw is not None and not family.thinking:
            # API_REFERENCE (quoted at FAMILIES); captured on gemini-2.0-flash: "thinking_config is
            # not supported." (https://github.com/immersive-translate/immersive-translate/issues/2976)
            raise _error("thinking_config is not supported.")
        thinking = _fields(raw or {}, THINKING_FIELDS, "generation_config.thinking_config")
        budget, level = thinking.get("thinkingBudget"), thinking.get("thinkingLevel")
        if budget is not None and level is not None:
            # the Gemini 3 page quoted at FAMILIES; captured wording:
            # https://github.com/sterlp/eclipse-peon-ai/issues/115
            raise _error("You can only set only one of thinking budget and thinking level.")
        table = {**self.thinking_tokens, **self._model_thinking.get(model, {})}
        if level is not None:
            name = str(level).lower()
            if name not in LEVELS:
                raise _invalid("generation_config.thinking_config.thinking_level",
                               "type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig"
                               ".ThinkingLevel", f'"{level}"')
            if not family.levels:
                # THINKING_GUIDE: "Gemini 2.5 series models don't support thinkingLevel; use
                # thinkingBudget instead." Captured: https://github.com/RooCodeInc/Roo-Code/issues/10700
                raise _error("Thinking level is not supported for this model.")
            if name not in family.levels:
                raise _error(f"Thinking level {name.upper()} is not supported for this model.")
            return table[name]
        if budget is None:
            return 0 if family.default == "off" else table[family.default]
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise _invalid("generation_config.thinking_config.thinking_budget", "TYPE_INT32", budget)
        if budget == -1:
            return table["dynamic"]
        if budget == 0:
            if not family.can_disable:
                # THINKING_GUIDE: "Cannot disable thinking"; captured wording:
                # https://github.com/snailyp/gemini-balance/issues/206
                raise _error("Budget 0 is invalid. This model only works in thinking mode.")
            return 0
        low, high = family.budget
        if not low <= budget <= high:
            # THINKING_GUIDE ranges (FAMILIES); captured wording:
            # https://github.com/RooCodeInc/Roo-Code/issues/4399
            raise _error(f"The thinking budget ({budget}) is invalid.")
        # THINKING_GUIDE: "Depending on the prompt, the model might overflow or underflow the token
        # budget." The stand-in thinks what it needs (dynamic), capped by the budget.
        return min(budget, table["dynamic"])

    # -- the answer --------------------------------------------------------------------------

    def _response(self, model: str, family: Family, system: str | None, contents: list[dict[str, str]],
                  config: dict[str, Any], thoughts: int, body: dict[str, Any]) -> dict[str, Any]:
        prompt = tokenize(system or "")
        for content in contents:
            prompt += [f"<{content['role']}>", *tokenize(content["text"])]
        # CACHING_GUIDE: "Implicit caching is enabled by default for all Gemini 2.5 models" with the
        # family's minimum (FAMILIES); the cached part is the longest prefix seen before
        cache = self._caches.get(family.name)
        cached = cache.hit(model, prompt) if cache is not None else 0
        limit = config.get("maxOutputTokens", family.output_limit)
        stops = config.get("stopSequences") or []
        include = bool((config.get("thinkingConfig") or {}).get("includeThoughts")
                       or (config.get("thinkingConfig") or {}).get("include_thoughts"))
        candidates, visible, spent = [], 0, 0
        for index in range(config.get("candidateCount", 1)):
            answer = self.reply(GeminiCall(model=model, family=family.name, system=system,
                                           contents=contents, seed=config.get("seed"), index=index,
                                           body=body))
            # THINKING_GUIDE, pricing: "response pricing is the sum of output tokens and thinking
            # tokens"; thoughts are generated first and count against maxOutputTokens, so a small
            # cap leaves no text: finishReason MAX_TOKENS and no parts
            # (https://github.com/googleapis/python-genai/issues/782)
            thought = min(thoughts, limit)
            room = limit - thought
            text, finish = answer, "STOP"
            if count_tokens(answer) > room:
                text, finish = cut(answer, room), "MAX_TOKENS"
            hits = [text.find(s) for s in stops if s in text]
            if hits:
                text, finish = text[: min(hits)], "STOP"
            parts: list[dict[str, Any]] = []
            if include and thought:
                parts.append({"text": f"Thinking about: {cut(contents[-1]['text'], 8)}", "thought": True})
            if text:
                parts.append({"text": text})
            content: dict[str, Any] = {"role": "model"}
            if parts:
                content["parts"] = parts
            candidate: dict[str, Any] = {"content": content, "finishReason": finish, "index": index}
            if config.get("responseLogprobs"):
                candidate.update(_logprobs(text, config.get("logprobs", 0)))
            candidates.append(candidate)
            visible += count_tokens(text)
            spent += thought
        usage: dict[str, Any] = {"promptTokenCount": len(prompt)}
        if visible:
            usage["candidatesTokenCount"] = visible
        usage["totalTokenCount"] = len(prompt) + visible + spent
        if spent:
            usage["thoughtsTokenCount"] = spent
        if cached:
            usage["cachedContentTokenCount"] = cached
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": len(prompt)}]
        return {"candidates": candidates, "usageMetadata": usage, "modelVersion": model,
                "responseId": secrets.token_urlsafe(12)}


def _logprobs(text: str, top: int) -> dict[str, Any]:
    """``logprobsResult`` for ``text``: each token chosen at -0.05, ``top`` candidates per step
    (itself, then ``standin_http.alternatives`` at -3, -4, ...)."""
    chosen = [{"token": token, "logProbability": -0.05} for token in pieces(text)]
    result: dict[str, Any] = {"chosenCandidates": chosen}
    if top:
        result["topCandidates"] = [{"candidates": [
            {"token": t, "logProbability": lp}
            for t, lp in ([(c["token"], -0.05)] + [(alt, -3.0 - j) for j, alt in
                                                    enumerate(alternatives(c["token"], top - 1))])[:top]
        ]} for c in chosen]
    return {"logprobsResult": result, "avgLogprobs": -0.05 if chosen else 0.0}
