"""Reports: attack success and over-refusal rates with confidence intervals, tables and exports."""

from redtier.reports._export import (
    EXPORT_FORMATS,
    attempt_record,
    export_jsonl,
    run_record,
    summary_record,
)
from redtier.reports._render import (
    attempt_panel,
    finding_panel,
    models_table,
    over_refusal_table,
    probes_table,
    runs_table,
    summary_table,
)
from redtier.reports._summary import (
    CategoryStats,
    OverRefusalStats,
    summarize,
    summarize_over_refusal,
    wilson_interval,
)

__all__ = [
    "EXPORT_FORMATS",
    "CategoryStats",
    "OverRefusalStats",
    "attempt_panel",
    "attempt_record",
    "export_jsonl",
    "finding_panel",
    "models_table",
    "over_refusal_table",
    "probes_table",
    "run_record",
    "runs_table",
    "summarize",
    "summarize_over_refusal",
    "summary_record",
    "summary_table",
    "wilson_interval",
]
