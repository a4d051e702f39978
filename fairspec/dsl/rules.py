"""Rules that relate several fields of a spec; each finding names the exact key it is about."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.dsl.generation_rules import generation_findings
from fairspec.dsl.recorded_rules import recorded_findings
from fairspec.dsl.schema import Spec
from fairspec.dsl.source import FieldPath
from fairspec.dsl.training_rules import training_findings
from fairspec.errors import DataError
from fairspec.providers.families import family_for
from fairspec.providers.registry import LIMITS, kind_options, kinds_taking, provider_kind
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias, is_builtin, resolve_path
from fairspec.secrets import find_key_like
from fairspec.tasks.data import data_suffix, load_rows, split_file
from fairspec.tasks.kinds import COMMON_FIELDS, TASK_KINDS, default_extractor, task_kind
from fairspec.tracking import known_integrations

#: Template variables fairspec itself provides; a task field may not take these names.
RESERVED_VARIABLES = ("student_answer", "gold_answer", "rationale")
#: The extractors some task kind uses by default (regex is none's: it fits every kind).
_KIND_EXTRACTORS = frozenset(kind.extractor for kind in TASK_KINDS.values())


@dataclass(frozen=True)
class Finding:
    """A rule broken at ``path``."""

    path: FieldPath
    message: str
    hint: str | None = None


def check_rules(spec: Spec, base_dir: Path) -> list[Finding]:
    """Every cross-field rule of the spec language; an empty list means the spec is sound."""
    findings: list[Finding] = []
    for check in (_task, _dataset, _student, _teachers, _review, _rounds, _report_to):
        findings.extend(check(spec, base_dir))
    findings.extend(Finding(*found) for found in recorded_findings(spec, base_dir))
    findings.extend(Finding(*found) for found in training_findings(spec))
    findings.extend(Finding(f.path, f.message, f.hint) for f in generation_findings(spec)
                    if f.level == "error")
    return findings


def spec_notes(spec: Spec) -> list[Finding]:
    """What a sound spec should still hear about (a shared setting a teacher does not
    receive, a key its API ignores): printed by validate, never an error."""
    return [Finding(f.path, f.message, f.hint) for f in generation_findings(spec)
            if f.level == "note"] + _unused_settings(spec)


def _unused_settings(spec: Spec) -> list[Finding]:
    """Keys a teacher's provider never uses, said at their line: the request limits of one
    that sends no request (a local model, a replay file, recorded answers without a live
    fallback), and the repetition penalties of a local model (transformers' generate has
    no presence or frequency penalty)."""
    out: list[Finding] = []
    for path, teacher in spec.callers():
        kind = provider_kind(teacher.provider)
        live_fallback = teacher.recorded is not None and teacher.recorded.fallback is not None
        if not kind.remote and not live_fallback:
            for key in LIMITS:  # concurrency still sets how many calls go at once (a batch)
                if key != "concurrency" and key in teacher.model_fields_set:
                    out.append(Finding(path + (key,), f"{key} has no effect on provider "
                                       f"{teacher.provider!r}: it sends no request", "remove it"))
        if kind.local:
            own = teacher.generation.model_dump(exclude_none=True) if teacher.generation else {}
            for key in ("presence_penalty", "frequency_penalty"):
                value = own.get(key, getattr(spec.generation, key))
                if value:
                    where = path + ("generation", key) if key in own else ("generation", key)
                    out.append(Finding(where, f"{key} {value:g} has no effect on the local "
                                       f"model of teacher {teacher.name} (transformers' generate "
                                       "has no such penalty)", "remove it for this teacher"))
    return out


def _task(spec: Spec, base_dir: Path) -> list[Finding]:
    task, out = spec.task, []
    for required in COMMON_FIELDS:
        if required not in task.fields:
            out.append(Finding(("task", "fields"), f"missing the '{required}' field",
                               f"map it to a dataset column: {required}: <column>"))
    for required, holds in task_kind(task.kind).extra_fields.items():
        if required not in task.fields:
            out.append(Finding(("task", "fields"), f"{task.kind} needs an '{required}' field",
                               f"{required}: <column holding {holds}>"))
    for name in task.fields:
        if name in RESERVED_VARIABLES:
            out.append(Finding(("task", "fields", name),
                               f"'{name}' is a variable fairspec provides to templates",
                               "rename this field"))
        elif not name.isidentifier():
            out.append(Finding(("task", "fields", name),
                               f"'{name}' is not a valid template variable name",
                               "use letters, digits and _"))
    answer = task.answer
    extractor = answer.extractor or default_extractor(task.kind)
    if extractor == "regex":
        if not answer.pattern:
            out.append(Finding(("task", "answer", "pattern"),
                               "the regex extractor needs a pattern"))
        else:
            try:
                re.compile(answer.pattern)
            except re.error as exc:
                out.append(Finding(("task", "answer", "pattern"), f"invalid regex: {exc}"))
    elif answer.pattern is not None:
        out.append(Finding(("task", "answer", "pattern"),
                           f"pattern is only used by the regex extractor, not {extractor!r}",
                           "remove it or set extractor: regex"))
    if extractor in _KIND_EXTRACTORS and extractor != default_extractor(task.kind):
        out.append(Finding(("task", "answer", "extractor"),
                           f"extractor {extractor!r} does not fit task kind {task.kind!r}",
                           f"use {default_extractor(task.kind)!r} or regex"))
    return out


def _dataset(spec: Spec, base_dir: Path) -> list[Finding]:
    ds, out = spec.task.dataset, []
    where = ("task", "dataset")
    if (ds.hf is None) == (ds.path is None):
        out.append(Finding(where, "give exactly one of 'hf' (a hub id) or 'path' (local data)",
                           "hf: openai/gsm8k, or path: data/gsm8k/"))
        return out
    if ds.path is not None:
        for key in ("config", "revision"):
            if getattr(ds, key) is not None:
                out.append(Finding(where + (key,), f"'{key}' applies to hub datasets only",
                                   "remove it, or use hf:"))
        local = resolve_path(ds.path, base_dir)
        if not local.exists():
            out.append(Finding(where + ("path",), f"no such file or folder: {local}"))
        elif local.is_dir():
            for split_key in ("train_split", "test_split"):
                split = getattr(ds, split_key)
                try:
                    split_file(local, split)
                except DataError:
                    out.append(Finding(
                        where + (split_key,),
                        f"no file for split '{split}' in {local}",
                        f"expected {split}.jsonl, .json, .csv or .parquet (or .jsonl.gz, .json.gz)",
                    ))
        elif not data_suffix(local):
            out.append(Finding(where + ("path",), f"unsupported data file type '{local.suffix}'",
                               "use jsonl, json, csv or parquet (jsonl and json may be gzipped)"))
        if not out:
            out += _local_rows(spec, base_dir)
    variant_names = {v.name for v in spec.variants}
    for i, seed in enumerate(spec.seeds or []):
        if (spec.seeds or []).index(seed) != i:
            out.append(Finding(("seeds", i), f"seed {seed} is in seeds twice",
                               "each seed trains once: remove one"))
        elif i and f"seed-{seed}" in variant_names:
            out.append(Finding(("seeds", i), f"seed {seed}'s runs are named <run>.seed-{seed}, "
                               f"as is the variant seed-{seed}", "rename the variant"))
    if spec.evaluation.samples > 1 and spec.evaluation.decoding == "greedy":
        out.append(Finding(("evaluation", "samples"),
                           f"{spec.evaluation.samples} greedy decodes of a question are one "
                           "answer repeated", "set evaluation.decoding: sample, or samples: 1"))
    if spec.evaluation.split not in (ds.test_split, ds.train_split):
        out.append(Finding(("evaluation", "split"),
                           f"split '{spec.evaluation.split}' is neither the train_split "
                           f"'{ds.train_split}' nor the test_split '{ds.test_split}'",
                           f"usually: {ds.test_split}"))
    return out


def _local_rows(spec: Spec, base_dir: Path) -> list[Finding]:
    """A local dataset's rows, read as the exam and the evaluation will read them (its
    encoding, JSON, the fields the spec names, gold answers): a bad row is a problem now,
    at the dataset's line, not a failure after the teachers were paid; so is an empty
    split. Hub datasets are read when the run starts."""
    ds, out = spec.task.dataset, []
    fields = {k: v for k, v in spec.task.fields.items() if v}
    needed = (*COMMON_FIELDS, *task_kind(spec.task.kind).extra_fields)
    if any(name not in fields for name in needed):
        return []  # _task says which field is missing
    extractor = spec.task.answer.extractor or default_extractor(spec.task.kind)
    for split_key, limit in (("train_split", ds.limit.train), ("test_split", ds.limit.test)):
        split = getattr(ds, split_key)
        found = _rows_problem(resolve_path(ds.path or "", base_dir), ds, tuple(sorted(fields.items())),
                              extractor, split, limit, base_dir)
        if found == "empty":
            out.append(Finding(("task", "dataset", split_key), f"split '{split}' has no rows",
                               "a run needs questions to ask"))
        elif found is not None:
            out.append(Finding(("task", "dataset", "path"), f"split '{split}': {found}"))
    return out


#: (file, mtime, the reading) -> what is wrong with its rows ("empty", a message, None):
#: every variant and sweep point validates the same dataset, read once
_ROWS_CHECKED: dict[tuple[Any, ...], str | None] = {}


def _rows_problem(local: Path, ds: Any, fields: tuple[tuple[str, str], ...], extractor: str,
                  split: str, limit: int | None, base_dir: Path) -> str | None:
    try:
        stamp = tuple((str(p), p.stat().st_mtime_ns) for p in [local, *sorted(local.glob(f"{split}.*"))]
                      if p.exists()) if local.is_dir() else ((str(local), local.stat().st_mtime_ns),)
    except OSError:
        stamp = ()
    key = (stamp, fields, extractor, split, limit)
    if key not in _ROWS_CHECKED:
        try:
            loaded = load_rows(ds, dict(fields), extractor, split, limit, base_dir)
            _ROWS_CHECKED[key] = None if loaded.rows else "empty"
        except (DataError, ValueError) as exc:
            _ROWS_CHECKED[key] = str(exc)
    return _ROWS_CHECKED[key]


def _student(spec: Spec, base_dir: Path) -> list[Finding]:
    hw, out = spec.student.hardware, []
    path = ("student", "hardware")
    if not spec.student.model.strip():
        out.append(Finding(("student", "model"), "model is empty",
                           "a hub id (Qwen/Qwen2.5-1.5B-Instruct), a local folder, or builtin:<alias>"))
    alias = builtin_model_alias(spec.student.model)
    if alias is not None and alias not in BUILTIN_MODELS:
        out.append(Finding(("student", "model"), f"unknown builtin model '{alias}'",
                           "known: " + ", ".join(f"builtin:{a}" for a in BUILTIN_MODELS)))
    if hw.device == "cpu":
        if hw.gpus > 1:
            out.append(Finding(path + ("gpus",), "device is cpu but gpus > 1",
                               "set device: cuda, or gpus: 1"))
        if hw.dtype == "fp16":
            out.append(Finding(path + ("dtype",), "fp16 is not supported on cpu",
                               "use fp32 (or auto)"))
        if spec.student.exam.engine == "vllm":
            out.append(Finding(("student", "exam", "engine"),
                               "engine vllm needs a GPU here (device is cpu)",
                               "use hf or auto"))
    out.extend(_training_processes(spec))
    out.extend(_exam_parallelism(spec, base_dir))
    return out


def _training_processes(spec: Spec) -> list[Finding]:
    """nodes x processes against strategy and device (the launch paths that have run)."""
    hw, out = spec.student.hardware, []
    path = ("student", "hardware")
    per_node = hw.processes if hw.processes is not None else (1 if hw.device == "cpu" else hw.gpus)
    world = hw.nodes * per_node
    if hw.strategy != "none" and world < 2:
        out.append(Finding(path + ("strategy",),
                           f"strategy {hw.strategy!r} needs more than one training process, "
                           f"and this spec has {world}",
                           "set gpus (or processes, or nodes), or strategy: none"))
    if hw.strategy == "none":
        for key in ("processes", "nodes"):
            if (getattr(hw, key) or 1) > 1:
                out.append(Finding(path + (key,),
                                   f"{key} {getattr(hw, key)} trains on several processes, "
                                   "which needs a strategy",
                                   "strategy: ddp (or fsdp, deepspeed on GPUs)"))
    if hw.device == "cpu" and hw.strategy in ("fsdp", "deepspeed"):
        out.append(Finding(path + ("strategy",),
                           f"strategy {hw.strategy!r} needs GPUs; on cpu, processes train "
                           "with ddp over gloo",
                           "strategy: ddp, or device: cuda"))
    if hw.device == "cuda" and hw.processes is not None and hw.processes > hw.gpus:
        out.append(Finding(path + ("processes",),
                           f"processes {hw.processes} is more than gpus {hw.gpus} "
                           "(one training process per GPU)",
                           f"at most {hw.gpus}, or leave it unset"))
    return out


def _report_to(spec: Spec, base_dir: Path) -> list[Finding]:
    """Each tracker is one the installed transformers' Trainer knows, named once."""
    names, out = spec.training.report_to, []
    known = known_integrations() if names else ()
    for i, name in enumerate(names):
        path = ("training", "report_to", i)
        if name in ("all", "none"):
            out.append(Finding(path, f"{name!r} is not a tracker name here",
                               "list the trackers (report_to: [tensorboard]), or [] for none"))
        elif name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            out.append(Finding(path, f"{name!r} is not an integration of the installed "
                                     f"transformers' Trainer",
                               (f"did you mean {close[0]!r}? " if close else "")
                               + "one of: " + ", ".join(known)))
        elif name in names[:i]:
            out.append(Finding(path, f"{name!r} is listed twice", "name each tracker once"))
    return out


def _exam_parallelism(spec: Spec, base_dir: Path) -> list[Finding]:
    """vLLM's tensor x data parallel layout and options, checked before any GPU is taken."""
    hw, exam, out = spec.student.hardware, spec.student.exam, []
    path = ("student", "hardware")
    if hw.tensor_parallel * hw.data_parallel > hw.gpus:
        key = "data_parallel" if hw.data_parallel > 1 else "tensor_parallel"
        if hw.data_parallel > 1 or hw.tensor_parallel > hw.gpus:
            out.append(Finding(path + (key,),
                               f"tensor_parallel {hw.tensor_parallel} x data_parallel "
                               f"{hw.data_parallel} needs {hw.tensor_parallel * hw.data_parallel} "
                               f"GPUs, and gpus is {hw.gpus}",
                               f"at most {hw.gpus} GPUs in all"))
    if exam.engine == "hf":
        if hw.tensor_parallel > 1:  # hf answers on one device a replica: it would be ignored
            out.append(Finding(path + ("tensor_parallel",),
                               f"tensor_parallel {hw.tensor_parallel} splits a model over GPUs "
                               "in vLLM only; the exam engine is hf (one GPU per replica)",
                               "engine: vllm (or auto with vllm installed), or tensor_parallel: "
                               "1 (hf runs data_parallel replicas, one GPU each)"))
        for key, value in exam.vllm.model_dump().items():
            if value is not None:
                out.append(Finding(("student", "exam", "vllm", key),
                                   f"'{key}' is a vLLM option; the exam engine is hf",
                                   "remove it, or engine: vllm (or auto)"))
    config = local_model_config(spec.student.model, base_dir)
    if config is not None and hw.tensor_parallel > 1 and exam.engine != "hf":
        heads = config.get("num_attention_heads")
        kv_heads = config.get("num_key_value_heads") or heads
        tp = hw.tensor_parallel
        if isinstance(heads, int) and heads % tp:
            out.append(Finding(path + ("tensor_parallel",),
                               f"tensor_parallel {tp} does not divide the model's {heads} "
                               "attention heads (vLLM refuses it)",
                               "one of: " + ", ".join(str(d) for d in range(1, heads + 1)
                                                      if heads % d == 0 and d <= hw.gpus)))
        elif isinstance(kv_heads, int) and kv_heads % tp and tp % kv_heads:
            out.append(Finding(path + ("tensor_parallel",),
                               f"tensor_parallel {tp} neither divides nor is a multiple of the "
                               f"model's {kv_heads} key/value heads (vLLM refuses it)",
                               "a divisor or a multiple of " + str(kv_heads)))
    return out


def local_model_config(model: str, base_dir: Path) -> dict | None:
    """The student's ``config.json`` when it is on this machine (a folder, or a builtin
    model already converted), else None: nothing is downloaded or converted to check."""
    import json

    from fairspec.weights import cache_root

    alias = builtin_model_alias(model)
    if alias is not None:
        folder = cache_root() / "models" / alias
    else:
        folder = resolve_path(model, base_dir)
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("text_config", data) if isinstance(data, dict) else None


def _teachers(spec: Spec, base_dir: Path) -> list[Finding]:
    out: list[Finding] = _jury_names(spec)
    seen: dict[str, str] = {}
    for path, teacher in spec.callers():  # the teachers, then the jurors declared in review.jury
        where = f"{path[0]}[{path[1]}]" if len(path) == 2 else f"review.jury[{path[2]}]"
        if teacher.name in seen:
            out.append(Finding(path + ("name",),
                               f"duplicate teacher name '{teacher.name}' (also {seen[teacher.name]})",
                               "names must be unique, across teachers and jurors"))
        seen.setdefault(teacher.name, where)
        if path[0] == "review" and teacher.provider == "recorded":
            out.append(Finding(path + ("provider",), "a juror cannot be recorded: the recorded "
                               "files hold the teachers' own reviews of each other",
                               "name the recorded teacher in review.jury instead, or use a live "
                               "provider (or replay_file)"))
        if not teacher.model.strip():
            out.append(Finding(path + ("model",), "model is empty",
                               "the model the provider serves, e.g. gpt-3.5-turbo (for hf: a hub "
                               "id, a local folder, or builtin:<alias>)"))
        kind = provider_kind(teacher.provider)
        for key in kind_options():  # the options only some provider kinds take
            if key == "batch":  # never None (a bool): _batch says why a kind has no batch API
                continue
            if getattr(teacher, key) is not None and not kind.takes(key):
                out.append(Finding(path + (key,),
                                   f"'{key}' does not apply to provider {teacher.provider!r}",
                                   "remove it"))
        out += _batch(teacher, kind, path)
        if teacher.base_url is not None and not re.match(r"^https?://", teacher.base_url):
            out.append(Finding(path + ("base_url",), "base_url must start with http:// or https://"))
        elif teacher.base_url is not None and (secret := _credentials_in(teacher.base_url)):
            out.append(Finding(path + ("base_url",), f"base_url holds {secret}: it would be "
                               "written to the record, the plan and every log",
                               "put the key in an environment variable and name it with "
                               "api_key_env"))
        rule = kind.key_rule
        if rule is not None and teacher.api_key_env is None and getattr(teacher, rule.unless) is None:
            out.append(Finding(path, rule.message, f"api_key_env: {kind.key_env}"))
        if spec.budget.max_usd is not None and kind.priced and teacher.price is None:
            out.append(Finding(path, "budget.max_usd is set but this teacher has no price, so its "
                               "spend cannot be counted",
                               "price: {input_per_mtok: ..., output_per_mtok: ...} (0 for a free host)"))
        for option, example in kind.required:
            if getattr(teacher, option) is None:
                out.append(Finding(path, f"provider {kind.name} needs {option}",
                                   f"{option}: {example}"))
        if kind.model_is_path:
            alias = builtin_model_alias(teacher.model)
            if alias is not None and alias not in BUILTIN_MODELS:
                out.append(Finding(path + ("model",), f"unknown builtin model '{alias}'",
                                   "known: " + ", ".join(f"builtin:{a}" for a in BUILTIN_MODELS)))
        if teacher.replay_file is not None and not is_builtin(teacher.replay_file):
            if not resolve_path(teacher.replay_file, base_dir).is_file():
                out.append(Finding(path + ("replay_file",),
                                   f"no such file: {resolve_path(teacher.replay_file, base_dir)}"))
    return out


#: Query parameters that carry a credential (``?api_key=...``, ``?token=...``, ``?sig=...``).
_SECRET_PARAM = re.compile(r"(?i)(key|token|secret|password|passwd|sig|signature|auth)")


def _credentials_in(url: str) -> str | None:
    """What credential ``url`` carries (user:password, a key in its query, a key-shaped
    string anywhere), or None."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        return None
    if userinfo:
        return "a user name or password (user:pass@)"
    named = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)
             if _SECRET_PARAM.search(name)]
    if named:
        return f"a credential in its query ({', '.join(sorted(set(named)))})"
    shape = find_key_like(url)
    return f"an {shape}" if shape else None


def _jury_names(spec: Spec) -> list[Finding]:
    """A name in ``review.jury`` is a teacher's, once."""
    out: list[Finding] = []
    teachers = [t.name for t in spec.teachers]
    named: set[str] = set()
    for i, member in enumerate(spec.review.jury):
        if not isinstance(member, str):
            continue
        path = ("review", "jury", i)
        if member not in teachers:
            out.append(Finding(path, f"'{member}' is not a teacher of this spec",
                               "a juror is a teacher's name or a declaration "
                               "({name: ..., provider: ..., model: ...}); teachers: "
                               + ", ".join(teachers)))
        elif member in named:
            out.append(Finding(path, f"teacher '{member}' is in the jury twice", "remove one"))
        elif any(t.name == member and t.provider == "recorded" for t in spec.teachers):
            out.append(Finding(path, f"teacher '{member}' is recorded: its recorded review "
                               "scores are read by the reviewer's rank among all the teachers, "
                               "which a jury changes", "review.jury: [] (the teachers review), "
                               "or a live juror"))
        named.add(member)
    return out


def _batch(teacher: Any, kind: Any, path: tuple[Any, ...]) -> list[Finding]:
    """``batch: true`` needs a kind with a batch API (and the Gemini API, not Vertex AI);
    ``batch_price`` needs ``batch: true``."""
    if not teacher.batch:
        if teacher.batch_price is not None:
            return [Finding(path + ("batch_price",), "batch_price applies only with batch: true",
                            "set batch: true, or remove batch_price")]
        return []
    if not kind.takes("batch"):
        reason = kind.no_batch or "it has no batch API"
        return [Finding(path + ("batch",), f"batch: true does not apply to provider "
                        f"{teacher.provider!r}: {reason}",
                        f"batch works with provider {', '.join(kinds_taking('batch'))}; "
                        "remove batch")]
    if getattr(teacher, "vertex", None) is not None:
        return [Finding(path + ("batch",), "batch: true is for the Gemini API: Vertex AI's batch "
                        "prediction reads its requests from Cloud Storage or BigQuery, which "
                        "fairspec does not write", "remove vertex: (use api_key_env), or batch")]
    return []


def reviewers_per_rationale(spec: Spec) -> int:
    """How many reviewers score each rationale under the spec's review policy, at least
    (a teacher in the jury skips its own rationales with exclude_self)."""
    reviewers = spec.reviewers()
    teachers = {t.name for t in spec.teachers}
    own = any(r.name in teachers for r in reviewers)  # the jury's teachers are authors too
    return len(reviewers) - 1 if spec.review.exclude_self and own else len(reviewers)


def _review(spec: Spec, base_dir: Path) -> list[Finding]:
    review, out = spec.review, []
    low, high = review.score_range
    if low >= high:
        out.append(Finding(("review", "score_range"),
                           f"score_range [{low}, {high}] must be [low, high] with low < high",
                           "e.g. [1, 5]"))
    elif not low <= review.threshold <= high:
        out.append(Finding(("review", "threshold"),
                           f"threshold {review.threshold} is outside score_range [{low}, {high}]"))
    elif review.accept == ">" and review.threshold >= high:
        out.append(Finding(("review", "threshold"),
                           f"with accept '>' no score can pass threshold {review.threshold}",
                           "lower the threshold or use '>='"))
    if not review.enabled:
        return out
    if reviewers_per_rationale(spec) < 1:
        out.append(Finding(("review", "jury") if review.jury else ("review", "exclude_self"),
                           "peer review with exclude_self needs at least 2 teachers"
                           if not review.jury else "no juror may review a rationale of "
                           "the jury's only teacher (exclude_self)",
                           "add a teacher or a juror, or set review.enabled: false"))
    elif review.min_valid_scores > reviewers_per_rationale(spec):
        out.append(Finding(("review", "min_valid_scores"),
                           f"min_valid_scores {review.min_valid_scores} is more than the "
                           f"{reviewers_per_rationale(spec)} reviewer(s) each rationale gets",
                           f"at most {reviewers_per_rationale(spec)}"))
    if review.scoring == "logprobs":
        out.extend(_logprob_scoring(spec))
    return out


def _logprob_scoring(spec: Spec) -> list[Finding]:
    review, out = spec.review, []
    low, high = review.score_range
    if low < high and (low < 0 or high > 9):
        out.append(Finding(("review", "score_range"),
                           f"scoring: logprobs reads single-digit scores; score_range "
                           f"[{low}, {high}] has scores of two digits",
                           "use a range within 0-9 (e.g. [1, 5]) or scoring: text"))
    if review.scoring_fallback == "none":
        reviewers = {t.name for t in spec.reviewers()}
        for path, teacher in spec.callers():
            if teacher.name not in reviewers:
                continue
            family = family_for(teacher.provider, teacher.model)
            if family is not None and not family.logprobs:
                out.append(Finding(path + ("model",),
                                   f"{teacher.model} ({family.name}) returns no "
                                   "log-probabilities, and review.scoring_fallback is none: "
                                   f"none of {teacher.name}'s reviews would have a score",
                                   "set review.scoring_fallback: text, or use another reviewer"))
            elif not provider_kind(teacher.provider).logprobs:
                out.append(Finding(path + ("provider",),
                                   f"provider {teacher.provider!r} cannot return "
                                   "log-probabilities, and review.scoring_fallback is none: "
                                   f"none of {teacher.name}'s reviews would have a score",
                                   "set review.scoring_fallback: text, or use another reviewer"))
    return out


def _rounds(spec: Spec, base_dir: Path) -> list[Finding]:
    """Rounds: options that only matter past round 1, and what cannot answer round k >= 2."""
    rounds, out = spec.rounds, []
    if rounds.count == 1:
        for key in sorted(rounds.model_fields_set - {"count"}):
            if getattr(rounds, key) == type(rounds).model_fields[key].default:
                continue  # a default written out (a record writes every key) changes nothing
            out.append(Finding(("rounds", key), f"rounds.{key} has no effect with one round",
                               "set rounds.count: 2 or more, or remove it"))
        return out
    if rounds.data == "own" and rounds.start_from == "base":
        out.append(Finding(("rounds", "data"),
                           "with data: own and start_from: base, round k would tune the base "
                           "student on round k's mistakes alone and lose what earlier rounds "
                           "taught", "use data: accumulate, or start_from: previous"))
    for i, teacher in enumerate(spec.teachers):
        if teacher.provider == "recorded":
            out.append(Finding(("teachers", i, "provider"),
                               f"teacher {teacher.name} is recorded: its feedback is about the "
                               "recorded student's answers, not the wrong answers of round 2's "
                               "tuned student", "use a live teacher, or rounds.count: 1"))
    return out
