"""The call store: every teacher call, kept durably and paid for once.

``CallIdentity`` names a call by what can change its answer (its ``key``); ``CallStore`` keeps
records in ``<output_dir>/calls.sqlite`` and exports the replay file that
``load_replay`` answers from; ``teacher_requests`` names the requests a teacher stage makes
and their identities (one recipe for the stages and the plan's estimate).
"""

from fairspec.store.call_record import COMPLETED, STATUSES, CallRecord
from fairspec.store.calls import (
    CALLS_FILENAME,
    CallStats,
    CallStore,
    completed_calls,
    default_store_path,
    read_call_records,
)
from fairspec.store.keys import NOT_SETTINGS, CallIdentity, canonical_json, normalise_base_url
from fairspec.store.replay import AnyProviderReplay, Replay, ReplayMissError, load_replay

__all__ = [
    "AnyProviderReplay",
    "CALLS_FILENAME",
    "COMPLETED",
    "NOT_SETTINGS",
    "STATUSES",
    "CallIdentity",
    "CallRecord",
    "CallStats",
    "CallStore",
    "Replay",
    "ReplayMissError",
    "canonical_json",
    "completed_calls",
    "default_store_path",
    "load_replay",
    "normalise_base_url",
    "read_call_records",
]
