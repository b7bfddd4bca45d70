"""The Hugging Face Hub step: a model card generated from the wheel and the
metrics, a staged folder, and the upload.

- `inputs`: reading the wheel, the metrics and the threshold record (checked).
- `card`: the card (huggingface_hub's ModelCard + templates/model_card.md.j2) and its chart.
- `stage`: `stage_hub` writes exactly what `push_folder` uploads, without the network.
- `push`: `push_folder` uploads it, never more visible than asked, with timeouts.

Project library code: never imported by a loaded pipeline.
"""
from .card import (
    EXAMPLE_TEXT,
    TEMPLATE,
    CardExample,
    build_card,
    card_data,
    front_matter,
    install_url,
    parse_card,
    plot_per_label_f,
    provenance,
)
from .inputs import (
    CARD_NAME,
    CHART_NAME,
    DEFAULT_ENDPOINT,
    PLACEHOLDER_NAMESPACE,
    CardMetrics,
    HubError,
    StagedFolder,
    ThresholdRecord,
    check_wheel_name,
    load_metrics,
    load_threshold_record,
    normalize_metrics,
    read_wheel,
)
from .push import DEFAULT_TIMEOUT, PushResult, private_install_command, push_folder, resolve_token
from .stage import check_staged, run_example, stage_hub

__all__ = [
    "CARD_NAME",
    "CHART_NAME",
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "EXAMPLE_TEXT",
    "PLACEHOLDER_NAMESPACE",
    "TEMPLATE",
    "CardExample",
    "CardMetrics",
    "HubError",
    "PushResult",
    "StagedFolder",
    "ThresholdRecord",
    "build_card",
    "card_data",
    "check_staged",
    "check_wheel_name",
    "front_matter",
    "install_url",
    "load_metrics",
    "load_threshold_record",
    "normalize_metrics",
    "parse_card",
    "plot_per_label_f",
    "private_install_command",
    "provenance",
    "push_folder",
    "read_wheel",
    "resolve_token",
    "run_example",
    "stage_hub",
]
