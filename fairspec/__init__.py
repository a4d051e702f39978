"""fairspec: FAIR (Fault-Aware DIstillation via peer-Review) experiments from one YAML spec.

The flow is one way: spec -> plan -> stages -> run folder -> report. Modules are
layered, lowest first; a module imports only from its own layer or a lower one, never
upwards, not even inside a function (``tests/test_layers.py`` enforces it, and that
the import graph has no cycle):

    0 foundation   errors, hashing, secrets, resources, dtypes, templates, artifacts, progress
    1 libraries    tasks, providers, store, review, engines, training, weights
                   (know nothing of the spec; tasks and providers hold the registries of
                   task kinds and provider kinds that the spec language is built from)
    2 dsl          the spec language: schema, loader with positions, rules, variants
    3 plan         the compiler and the Plan it makes (stage graph, estimate, hardware, render)
    4 services     teachers (call store bound to providers, committee, pool, budget),
                   answering (the student answering a split), report (pages from a run folder)
    5 stages       the stage kinds (exam, teach, review, build, train, evaluate, report): each
                   reads only its compiled stage through a StageContext, never the spec
    6 run          the executor (walks the Plan) and the run record
    7 cli          the command line and its rich progress view (cli, progress_view)
"""

__version__ = "0.1.0"
