"""The spec language: schema, loader with positions, extends chains, cross-field rules, variants."""

from fairspec.dsl.loader import LoadedSpec, VariantSpec, load_spec, load_spec_text, template_ref
from fairspec.dsl.schema import Spec

__all__ = ["LoadedSpec", "Spec", "VariantSpec", "load_spec", "load_spec_text", "template_ref"]
