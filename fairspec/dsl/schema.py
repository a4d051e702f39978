"""The spec language (v1) as pydantic models: every key, its type, its documented default.

Defaults that come from the FAIR paper name their table: teacher sampling is Table 7,
the student's exam sampling Table 8, training hyperparameters Table 9; the review
threshold Th = 4 and alpha = 0.5 are from section 4.3. Rules that relate several
fields (threshold inside score_range, tensor_parallel <= gpus, ...) live in
``rules.py`` so that each can point at the exact key it is about.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from fairspec.providers.registry import kinds_taking, provider_names
from fairspec.tasks.contamination import NGRAM
from fairspec.tasks.extract import ANSWER_KINDS
from fairspec.tasks.kinds import TASK_KINDS, extractors_summary, fields_summary

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
TEACHER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, Field(ge=1)]
Scalar = str | int | float | bool | None

#: The task kinds and answer extractors, built from the registries in fairspec.tasks.
TaskKind = Literal[tuple(TASK_KINDS)]  # type: ignore[valid-type]
ExtractorKind = Literal[ANSWER_KINDS]  # type: ignore[valid-type]
#: The provider kinds, from the registry in fairspec.providers.registry.
ProviderKind = Literal[provider_names()]  # type: ignore[valid-type]


#: What numpy's and torch's seeding (transformers' set_seed) take: 0 to 2**32 - 1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked strictly."""

    # inf and nan are no value a spec means (timeout_s: .inf would wait forever)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)


class SplitLimit(Section):
    """Row caps per split, for smoke runs (null = every row)."""

    train: PositiveInt | None = None
    test: PositiveInt | None = None


class Dataset(Section):
    """Where the task's rows come from: exactly one of ``hf`` (a hub id) or ``path`` (local)."""

    hf: str | None = Field(None, description="datasets hub id, e.g. openai/gsm8k")
    config: str | None = Field(None, description="hub config name (gsm8k: main)")
    revision: str | None = Field(None, description="hub revision (commit or tag)")
    path: str | None = Field(
        None,
        description="local file or folder (jsonl, json, csv, parquet), relative to the spec; "
        "a folder holds one file per split named after the split",
    )
    train_split: str = "train"
    test_split: str = "test"
    limit: SplitLimit = SplitLimit()


class Answer(Section):
    """How the final answer is read from a model's text (default by task kind)."""

    extractor: ExtractorKind | None = Field(
        None, description=f"default: {extractors_summary()}"
    )
    pattern: str | None = Field(None, description="regex extractor only: the answer pattern")
    tolerance: Annotated[float, Field(ge=0.0)] = Field(
        1.0e-6, description="number extractor only: |predicted - gold| <= tolerance is correct"
    )


class Task(Section):
    """The benchmark: its kind, its rows, which columns feed the templates, how to score."""

    kind: TaskKind
    dataset: Dataset
    fields: dict[str, str] = Field(
        description=f"template variable -> dataset column; needs {fields_summary()}"
    )
    answer: Answer = Answer()
    decontaminate: Literal["off", "report", "drop"] = Field(
        "report", description="look for the evaluation split's questions in the training set "
        "(13-word n-grams): report the examples that hold one (build/stats.json, the report), "
        "drop them before training, or off")
    decontaminate_ngram: Annotated[int, Field(ge=5, le=64)] = Field(
        NGRAM, description="words an n-gram of task.decontaminate holds (13: GPT-3's; open-r1 uses 8); "
        "a test question shorter than this must appear whole")


class VllmOptions(Section):
    """Options handed to ``vllm.LLM`` for the exam and the evaluation (null: vLLM's default).

    They change how fast and in how much memory vLLM answers, not what it answers, so
    they stay out of the stages' fingerprints."""

    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="share of each GPU's memory vLLM may take (vLLM's default 0.9)")
    max_model_len: PositiveInt | None = Field(
        None, description="longest prompt + answer in tokens (default: the model's context)")
    enforce_eager: bool | None = Field(None, description="no CUDA graphs (slower, less memory)")
    max_num_seqs: PositiveInt | None = Field(None, description="sequences scheduled at once")


class RecordedRows(Section):
    """How the rows of recorded files name their question: by its text (``match:
    question``, whitespace ignored) or by its row position in the split (``match: index``)."""

    match: Literal["question", "index"] = "question"
    question_column: str = Field("question", description="the files' column holding the question text")
    index_column: str = Field("id", description="the files' column holding the row position (match: index)")


class RecordedExam(RecordedRows):
    """The student's exam answers, recorded elsewhere (``engine: recorded``)."""

    path: str = Field(description="the file (json, jsonl, csv; may be gzipped), relative to the spec")
    answer: str = Field("answer", description="the column holding the student's answer text")
    prediction: str | None = Field(
        None, description="a column holding its final answer (default: the task's extractor reads it)")
    only_mistakes: bool = Field(
        False, description="the file lists only wrong answers: a listed question is a mistake, "
                           "an unlisted one was answered right")


class Exam(Section):
    """The student's exam on the train split (paper Table 8)."""

    engine: Literal["auto", "vllm", "hf", "recorded"] = Field(
        "auto", description="recorded: the answers come from student.exam.recorded (the "
                            "evaluation then runs the student with auto)")
    recorded: RecordedExam | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.3
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    top_k: Annotated[int, Field(ge=0)] = 50
    max_new_tokens: PositiveInt = 512
    do_sample: bool = Field(True, description="false = greedy decoding")
    chat_template: bool = Field(True, description="wrap the exam prompt in the tokenizer's chat template")
    batch_size: PositiveInt = Field(16, description="hf engine batch size (not in the fingerprint)")
    vllm: VllmOptions = VllmOptions()


class Hardware(Section):
    """Where the student runs: exam (vLLM tensor x data parallelism) and training
    (torch.distributed / accelerate, over ``nodes`` x ``processes``)."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: PositiveInt = Field(1, description="GPUs per node")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    tensor_parallel: PositiveInt = Field(1, description="vLLM tensor parallelism (<= gpus)")
    data_parallel: PositiveInt = Field(
        1, description="exam replicas, each on its own tensor_parallel GPUs (vLLM) or one "
                       "GPU (hf) (tensor_parallel x data_parallel <= gpus)")
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    nodes: PositiveInt = Field(1, description="machines training runs on")
    processes: PositiveInt | None = Field(
        None, description="training processes per node; null = gpus on cuda, 1 on cpu")
    gpu_memory_gb: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="memory of one GPU in GiB, for the plan's memory check; null = the "
                          "first GPU of the machine that plans, else 80 assumed")


class Student(Section):
    """The small LM that takes the exam and is tuned."""

    model: str = Field(description="hub id, local folder, or builtin:<alias>")
    exam: Exam = Exam()
    hardware: Hardware = Hardware()


#: What the OpenAI Batch API and Gemini batch mode charge, as a share of the online price.
BATCH_DISCOUNT = 0.5


class Price(Section):
    """USD per million tokens, for the plan's estimate and the live spend. Reasoning and
    thinking tokens are billed as output; input read from the provider's prompt cache at
    ``cached_input_per_mtok`` (null: at the input price)."""

    input_per_mtok: Annotated[float, Field(ge=0.0)] = 0.0
    output_per_mtok: Annotated[float, Field(ge=0.0)] = 0.0
    cached_input_per_mtok: Annotated[float, Field(ge=0.0)] | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
THINKING_LEVELS = ("minimal", "low", "medium", "high")


def _thinking(value: Any) -> Any:
    """A budget in tokens (0: off where the model allows it; -1: Gemini's dynamic budget)
    or a level: one message for anything else, not one per member of a union."""
    if isinstance(value, bool) or not (
            isinstance(value, int) and value >= -1 or value in THINKING_LEVELS):
        raise ValueError(f"thinking is a budget in tokens (0 or more; -1: dynamic) or a level "
                         f"({', '.join(THINKING_LEVELS)}), got {value!r}")
    return value


Thinking = Annotated[Any, PlainValidator(_thinking)]


class GenerationOverrides(Section):
    """Per-teacher changes to the shared ``generation`` settings."""

    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: PositiveInt | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    reasoning_effort: ReasoningEffort | None = None
    thinking: Thinking | None = None
    extra_body: dict[str, Any] | None = None


class Vertex(Section):
    """Gemini through Vertex AI instead of the Gemini API."""

    project: str
    location: str = "us-central1"


def _kinds_taking(option: str) -> str:
    """'openai/gemini' or 'gemini only': the provider kinds a Teacher option applies to."""
    names = kinds_taking(option)
    return "/".join(names) + (" only" if len(names) == 1 else "")


class RecordedSource(Section):
    """Where one role's recorded answers are: a file, a column, an item of a list cell."""

    path: str = Field(description="the file (json, jsonl, csv; may be gzipped), relative to the spec")
    column: str = Field(description="the column; {teacher} (this teacher's file_name) and, for "
                                    "review, {author} (the rationale's author) are filled in")
    item: int | Literal["reviewer_rank"] | None = Field(
        None, description="when the cell is a list: which item is the answer (reviewer_rank: "
                          "the reviewer's 1-based position among the rationale's reviewers)")


class RecordedTeacherAnswers(RecordedRows):
    """A ``recorded`` teacher's files: rationale, feedback and review answers by question."""

    rationale: RecordedSource | None = None
    feedback: RecordedSource | None = None
    review: RecordedSource | None = None
    file_name: str | None = Field(None, description="this teacher's name in the files' columns "
                                                    "(default: its name)")
    fallback: Literal["openai", "gemini", "hf"] | None = Field(
        None, description="ask this provider kind (the teacher's model, base_url, api_key_env) "
                          "what the files lack; null: a missing answer is an error")


class Teacher(Section):
    """One teacher LLM of the committee."""

    name: Annotated[str, Field(pattern=TEACHER_NAME_PATTERN, max_length=40)]
    provider: ProviderKind
    model: str
    base_url: str | None = Field(None, description=f"{_kinds_taking('base_url')}: another API host")
    api_key_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        None, description="NAME of the environment variable that holds the key"
    )
    vertex: Vertex | None = Field(None, description=f"{_kinds_taking('vertex')}: use Vertex AI")
    replay_file: str | None = Field(
        None, description=f"{_kinds_taking('replay_file')}: exported calls (jsonl)"
    )
    recorded: RecordedTeacherAnswers | None = Field(
        None, description=f"{_kinds_taking('recorded')}: the files its answers come from")
    concurrency: PositiveInt = Field(16, description="requests in flight (not in the fingerprint)")
    rpm: PositiveInt | None = Field(None, description="requests per minute limit")
    tpm: PositiveInt | None = Field(None, description="tokens per minute limit")
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0)] = 8
    price: Price | None = Field(None, description="null = unknown cost")
    batch: bool = Field(
        False, description=f"{_kinds_taking('batch')}: ask through the provider's batch API "
        "(OpenAI Batch API, Gemini batch mode): batch prices, answers within 24 h")
    batch_price: Price | None = Field(
        None, description="with batch: true, the price in batch mode (null: half of price)")
    generation: GenerationOverrides | None = None

    def paid_price(self) -> Price | None:
        """The price this teacher's calls are paid at: ``batch_price``, or half of ``price``
        in batch mode (both providers charge 50% for batch work); ``price`` online."""
        if not self.batch or self.price is None and self.batch_price is None:
            return self.price
        if self.batch_price is not None:
            return self.batch_price
        cached = self.price.cached_input_per_mtok
        return Price(input_per_mtok=self.price.input_per_mtok * BATCH_DISCOUNT,
                     output_per_mtok=self.price.output_per_mtok * BATCH_DISCOUNT,
                     cached_input_per_mtok=None if cached is None else cached * BATCH_DISCOUNT)


class Generation(Section):
    """Teacher sampling shared by every teacher (paper Table 7)."""

    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.8
    max_tokens: PositiveInt = Field(512, description="the visible reply's budget; a thinking "
                                    "model's thoughts come on top (providers.families)")
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0
    reasoning_effort: ReasoningEffort | None = Field(
        None, description="reasoning models (OpenAI o-series, GPT-5): none | minimal | low | "
        "medium | high | xhigh, as the model's family takes them")
    thinking: Thinking | None = Field(
        None, description="thinking models (Gemini 2.5/3, Claude): a budget in tokens or a "
        "level; for an OpenAI reasoning model the reasoning tokens allowed on top of max_tokens")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="fields added as they are to the request body of an "
        "OpenAI-compatible host (provider openai) or the Anthropic API")


class Prompts(Section):
    """Jinja templates (paths relative to the spec, or builtin:...); null = builtin for the task kind."""

    exam: str | None = None
    rationale: str | None = None
    feedback: str | None = None
    review: str | None = None


class Review(Section):
    """The peer-review policy (paper eq. 4; Th = 4, section 4.3)."""

    enabled: bool = True
    score_range: tuple[int, int] = (1, 5)
    threshold: float = 4
    accept: Literal[">=", ">"] = Field(
        ">=", description="'>=' as the paper's text says; the authors' code kept mean > 3"
    )
    aggregate: Literal["mean", "median", "min", "trimmed_mean"] = Field(
        "mean", description="trimmed_mean: the lowest and the highest score dropped when there "
        "are three or more, then the mean")
    exclude_self: bool = True
    min_valid_scores: PositiveInt = 1
    scoring: Literal["text", "logprobs"] = Field(
        "text", description="text: the score the reviewer wrote (the paper); logprobs: the "
        "probability-weighted mean over the scores at the token where it writes its score"
    )
    scoring_fallback: Literal["text", "none"] = Field(
        "text", description="with scoring: logprobs, a review whose distribution cannot be "
        "read (the server returned none) takes its text score (text) or is invalid (none)"
    )
    early_exit: bool = Field(
        True, description="stop asking a rationale's reviewers once the decision is certain; "
        "false: every reviewer scores every rationale (the paper's N(N-1) scores per question)"
    )
    jury: list[Annotated[str, Field(pattern=TEACHER_NAME_PATTERN)] | Teacher] = Field(
        default_factory=list, description="who reviews, when not the teachers: each entry a "
        "reviewer declared like a teacher (any provider, its own price and limits) or the name "
        "of a teacher; [] = the teachers (the paper). A juror who is no teacher scores every "
        "rationale; a teacher named here never its own (exclude_self)")
    gold_check: Literal["off", "report", "require"] = Field(
        "report", description="read each rationale's final answer with the task's extractor and "
        "compare it with the gold answer: report records it (reaches_gold), require also drops "
        "a rationale that does not reach it before any review is asked, off does neither"
    )


class Lora(Section):
    """Low-rank adapters through peft instead of full fine-tuning."""

    r: PositiveInt = 16
    alpha: Annotated[float, Field(gt=0)] = 32
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainingTemplates(Section):
    """Instruction-tuning formats (paper Appendix C); null = builtin for the task kind."""

    rationale: str | None = None
    feedback: str | None = None


class Training(Section):
    """Joint instruction tuning, L = alpha*L_feedback + (1-alpha)*L_rationale (Table 9)."""

    alpha: Probability = 0.5
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 8
    learning_rate: Annotated[float, Field(gt=0.0)] = 1.0e-5
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.03
    max_seq_length: PositiveInt = 512
    optimizer: str = Field(
        "adamw_torch", description="the Trainer's optim name, checked against the installed "
        "transformers (adamw_torch, adamw_torch_fused, adafactor, adamw_8bit, paged_adamw_32bit, "
        "paged_adamw_8bit, ...; the bitsandbytes ones need fairspec[bnb])"
    )
    gradient_accumulation_steps: PositiveInt = 2
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 0.3
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    selection: Literal["random_one", "all"] = "random_one"
    lora: Lora | None = None
    gradient_checkpointing: bool = False
    chat_template: bool = Field(
        False, description="wrap training prompts in the chat template (Appendix C uses plain text)"
    )
    templates: TrainingTemplates = TrainingTemplates()
    report_to: list[str] = Field(
        default_factory=list,
        description="the Trainer's experiment trackers (tensorboard, mlflow, wandb, ...: the "
        "installed transformers' integrations); fairspec logs its own metrics to tensorboard and "
        "mlflow too",
    )
    precision: Literal["mixed", "pure"] = Field(
        "mixed", description="with a half hardware.dtype: mixed = fp32 master weights under "
        "bf16/fp16 autocast; pure = the weights themselves in the half dtype (updates below its "
        "resolution round away; refused with fp16)"
    )
    save_steps: PositiveInt | None = Field(
        None, description="a checkpoint every N optimizer steps (a resume loses at most N); "
        "null = one per epoch; in no fingerprint"
    )
    keep_checkpoints: Literal["none", "last", "all"] = Field(
        "none", description="what stays in train/work/checkpoints/ once the stage is done: none, "
        "the newest (last), every one (all); in no fingerprint"
    )
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto", description="the student's attention while training: auto = what transformers "
        "picks (sdpa where the model has it); flash_attention_2 (a GPU, a half dtype and the "
        "flash-attn package) packs a batch into one row with no mask; in no fingerprint"
    )


class Evaluation(Section):
    """Zero-shot accuracy of the base and the tuned student."""

    split: str = "test"
    decoding: Literal["sample", "greedy"] = "sample"
    base: bool = Field(True, description="also evaluate the untuned student")
    samples: PositiveInt = Field(
        1, description="decodes per question (decoding: sample), each seeded per question and "
        "sample: the report gives the mean accuracy over them, majority-vote accuracy and "
        "pass@k; 1 = the paper's one sampled pass")


class BudgetSection(Section):
    """Spending limit for the teacher stages."""

    max_usd: Annotated[float, Field(gt=0)] | None = None


class Rounds(Section):
    """FAIR in rounds: round k >= 2 retakes the exam with round k-1's tuned student and
    the committee teaches its remaining mistakes (the paper's Limitations (3))."""

    count: PositiveInt = Field(1, description="rounds; 1 is the paper's single round")
    exam: Literal["all", "mistakes"] = Field(
        "all", description="what round k >= 2's exam covers: the whole train split (all) or "
        "only the questions round k-1's exam got wrong (mistakes)"
    )
    data: Literal["accumulate", "own"] = Field(
        "accumulate", description="round k trains on every example built so far (accumulate) "
        "or on its own round's examples only (own)"
    )
    start_from: Literal["base", "previous"] = Field(
        "base", description="the weights round k's training starts from: the base student "
        "(base) or round k-1's tuned student (previous)"
    )
    fresh_rationales: bool = Field(
        False, description="a question asked again gets a new, paid rationale (a new sample "
        "index); false: the call store answers it for free (P_rt depends only on the question)"
    )


class Variant(Section):
    """An ablation: the spec with some keys changed (dotted paths)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=60)]
    description: str = ""
    set: dict[str, Any] = Field(min_length=1)


class Spec(Section):
    """One FAIR experiment."""

    fairspec: Literal[1] = Field(description="spec language version")
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=80)]
    description: str = ""
    seed: Seed = 42
    seeds: Annotated[list[Seed], Field(min_length=1)] | None = Field(
        None, description="train and evaluate once per seed (the first in the spec's own run "
        "folders, each other in <run>.seed-<s>): exam, teach, review and build are shared; the "
        "report gives the mean, the standard deviation and each seed's row")
    task: Task
    student: Student
    teachers: list[Teacher] = Field(min_length=1)
    generation: Generation = Generation()
    prompts: Prompts = Prompts()
    review: Review = Review()
    training: Training = Training()
    evaluation: Evaluation = Evaluation()
    budget: BudgetSection = BudgetSection()
    rounds: Rounds = Rounds()
    variants: list[Variant] = []
    sweep: dict[str, list[Scalar]] = {}
    output_dir: str = Field("runs", description="run folders and the call store, relative to the spec")

    def reviewers(self) -> list[Teacher]:
        """Who scores the rationales: the jury's members (a name there is that teacher),
        or the teachers when there is no jury. Names the spec does not declare are left
        out (validate reports them)."""
        if not self.review.jury:
            return list(self.teachers)
        by_name = {t.name: t for t in self.teachers}
        return [m if isinstance(m, Teacher) else by_name[m] for m in self.review.jury
                if isinstance(m, Teacher) or m in by_name]

    def callers(self) -> list[tuple[tuple[str | int, ...], Teacher]]:
        """Every model the spec may call for the teach and review stages, with the path
        that declares it: each teacher, then each juror declared in ``review.jury``."""
        return ([(("teachers", i), t) for i, t in enumerate(self.teachers)]
                + [(("review", "jury", i), m) for i, m in enumerate(self.review.jury)
                   if isinstance(m, Teacher)])
