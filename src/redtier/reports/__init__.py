"""Reports: attack success rates with confidence intervals, tables and exports."""

from redtier.reports._export import EXPORT_FORMATS, attempt_record, export_jsonl, run_record
from redtier.reports._render import (
    finding_panel,
    models_table,
    probes_table,
    runs_table,
    summary_table,
)
from redtier.reports._summary import CategoryStats, summarize, wilson_interval

__all__ = [
    "EXPORT_FORMATS",
    "CategoryStats",
    "attempt_record",
    "export_jsonl",
    "finding_panel",
    "models_table",
    "probes_table",
    "run_record",
    "runs_table",
    "summarize",
    "summary_table",
    "wilson_interval",
]
