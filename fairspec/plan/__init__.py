"""Spec -> Plan: stages, fingerprints, hardware mapping and the teacher-call estimate."""

from .compiler import compile_plan
from .environment import Environment, detect_environment
from .model import STAGE_NAMES, Plan, RunPlan, Stage

__all__ = ["STAGE_NAMES", "Environment", "Plan", "RunPlan", "Stage", "compile_plan",
           "detect_environment"]
