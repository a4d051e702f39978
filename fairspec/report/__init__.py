"""The run report: paper-style tables and plots from a run folder (``fairspec report RUN_DIR``)."""

from fairspec.report.write import write_report

__all__ = ["write_report"]
