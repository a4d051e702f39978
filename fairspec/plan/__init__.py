"""Spec -> Plan: stages, fingerprints, hardware mapping and the teacher-call estimate."""

from fairspec.plan.compiler import compile_plan
from fairspec.plan.environment import Environment, detect_environment
from fairspec.plan.graph import Plan, RunPlan, Stage
from fairspec.plan.kinds import STAGE_NAMES

__all__ = ["STAGE_NAMES", "Environment", "Plan", "RunPlan", "Stage", "compile_plan",
           "detect_environment"]
