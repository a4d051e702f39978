"""fairspec: FAIR (Fault-Aware DIstillation via peer-Review) experiments from one YAML spec.

The flow is one way: spec -> plan -> stages -> run folder -> report. Modules are
layered, lowest first; a module imports only from its own layer or a lower one, never
upwards, not even inside a function or through ``importlib`` by name, and the import
graph has no cycle (``tests/test_layers.py`` reads the table below and enforces both):

    layer  name         modules
    0      foundation   errors hashing secrets resources dtypes templates prompting
    0      foundation   artifacts progress terminal template_sandbox
    1      libraries    tasks providers store review engines training weights tracking cards
    2      dsl          dsl
    3      plan         plan
    4      services     teachers answering report
    5      stages       stages
    6      run          run
    7      cli          cli progress_view

- foundation: exceptions, canonical JSON and hashes, key scrubbing, packaged files, dtypes,
  template rendering (in a sandbox bounded in time and size), stage files and manifests,
  progress protocols, terminal-safe text.
- libraries know nothing of the spec; ``tasks.kinds`` and ``providers.registry`` hold
  the task kinds and provider kinds that the spec language is built from; tracking: the
  Trainer's tracker names, fairspec's metrics written to TensorBoard and MLflow; cards:
  Hugging Face model and dataset cards.
- dsl: the spec language (schema, loader with positions, extends chains, rules, variants).
- plan: the compiler and the Plan it makes (stage graph, stage kinds' declared inputs
  and outputs, estimate, hardware, render).
- services the stages share: teachers (a provider bound to the call store and the
  budget, the committee, the worker pool), answering (the student answering a split),
  report (pages from a run folder's artifacts).
- stages: one module per stage kind, ``run(ctx)``; a stage reads only its compiled
  stage through a StageContext, never the spec.
- run: the executor (walks the Plan), the run record, and diff of specs and records.
- cli: the command line and its rich progress view.
"""

__version__ = "0.1.0"
