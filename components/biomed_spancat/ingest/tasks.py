"""The records that flow through ingestion: where a task came from (`Origin`),
the task itself (`Task`), and the one `Ledger` every stage reports to.

Every task a reader yields is counted exactly once in the ledger as kept,
rejected (with a reason), merged away or a duplicate, so that
`read == kept + rejected + merged + duplicates` holds by construction and is
checked before anything is written.
"""

import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import IO, Any, Dict, List, Optional

__all__ = ["Origin", "Task", "Ledger", "IngestError", "BalanceError", "pseudonym"]

# Keyed hashing: a user who wants ids that cannot be matched against a list of
# known e-mails across projects sets their own key in this variable.
PSEUDONYM_KEY_ENV = "BIOMED_ANNOTATOR_KEY"


def pseudonym(who: Any, tool: str = "") -> str:
    """A stable, opaque id for an annotator, so no e-mail, name or user object
    reaches any output (DocBins, reports, rejections, the card, logs).

    who (Any): What the tool gave: an id, a name, an e-mail or a user object
        (a dict is hashed whole, in canonical JSON).
    tool (str): A prefix naming the tool (\"labelstudio\", \"argilla\", \"prodigy\").
    RETURNS (str): e.g. \"labelstudio:a3f09c1e2b\"; the same input always gives
        the same id (with the same BIOMED_ANNOTATOR_KEY).
    """
    payload = json.dumps(who, sort_keys=True, ensure_ascii=False, default=str)
    key = os.environ.get(PSEUDONYM_KEY_ENV, "en_biomed_spancat").encode("utf8")[:64]
    digest = hashlib.blake2b(payload.encode("utf8"), digest_size=5, key=key).hexdigest()
    return f"{tool}:{digest}" if tool else f"annotator:{digest}"


class IngestError(Exception):
    """A fatal input problem (missing database, unknown dataset, unreadable
    file). The message names the source and the reason; the CLI exits non-zero."""


class BalanceError(IngestError):
    """The ledger does not balance: a task was lost or counted twice (a bug)."""


@dataclass(frozen=True)
class Origin:
    """Where one task was read: a file and line, or a dataset and row.

    source (str): The file path or the database (password already redacted).
    line (Optional[int]): 1-based line number in a JSONL file.
    dataset (Optional[str]): The dataset name (database) or file stem (JSONL).
    row (Optional[int]): The row id in the database (`example.id` for Prodigy).
    """

    source: str
    line: Optional[int] = None
    dataset: Optional[str] = None
    row: Optional[int] = None

    def __str__(self) -> str:
        if self.row is not None:
            return f"{self.source} dataset '{self.dataset}' row {self.row}"
        if self.line is not None:
            return f"{self.source}:{self.line}"
        return self.source

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"source": self.source}
        for key in ("line", "dataset", "row"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Task:
    """One raw task as a reader yields it, before validation.

    data (Optional[dict]): The task in Prodigy's shape (`text`, `tokens`,
        `spans`, `answer`, `meta`, `_input_hash`, ...). Readers of other tools
        translate into this shape. None when the record could not be parsed.
    origin (Origin): Where it was read.
    error (Optional[str]): Why the record could not be parsed (then `data` is None).
    reason (str): The rejection reason code for an unparseable record.
    role (str): "train", "dev" or "test": which output the task is meant for
        ("train" tasks may still be split off into dev/test).
    """

    data: Optional[Dict[str, Any]]
    origin: Origin
    error: Optional[str] = None
    reason: str = "malformed"
    role: str = "train"


@dataclass
class Ledger:
    """Counts for every task read and every decision taken on it.

    rejections_file (Optional[IO[str]]): Where each rejected task is written as
        one JSON line (source, line/row, reason, detail) as soon as it is
        rejected, so the file streams and nothing is held in memory.

    Besides the four buckets: `superseded` (accepts replaced by the same
    annotator's later accept; part of `merged`), `withdrawn` (accepts
    withdrawn by a later reject; part of `rejected`), `binary` (binary
    answers by "<kind> <answer>", e.g. "ner.teach accept"), and
    `rejected_by_source` (to tell a source of which nothing was kept).
    """

    rejections_file: Optional[IO[str]] = None
    read: int = 0
    kept: int = 0
    merged: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejected_by_source: Counter = field(default_factory=Counter)
    read_by_source: Counter = field(default_factory=Counter)
    kept_by_split: Counter = field(default_factory=Counter)
    spans_misaligned: Counter = field(default_factory=Counter)
    spans_dropped: Counter = field(default_factory=Counter)
    spans_renamed: Counter = field(default_factory=Counter)
    disagreements: Counter = field(default_factory=Counter)
    groups_with_disagreement: int = 0
    groups_merged: int = 0
    superseded: int = 0
    withdrawn: int = 0
    binary: Counter = field(default_factory=Counter)
    warnings: List[str] = field(default_factory=list)
    examples: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def count_read(self, task: Task) -> None:
        self.read += 1
        self.read_by_source[task.origin.source] += 1

    def reject(self, task: Task, reason: str, detail: str = "") -> None:
        """Count a task as rejected and write it to the rejections file.

        task (Task): The rejected task.
        reason (str): A short, stable reason code (e.g. "answer_reject").
        detail (str): A human-readable explanation naming the offending
            value; it never quotes an annotator identity.
        """
        data = task.data
        text = data.get("text") if data is not None else None
        input_hash = data.get("_input_hash") if data is not None else None
        self.reject_origin(task.origin, reason, detail, input_hash, text if isinstance(text, str) else None)

    def reject_origin(
        self,
        origin: Origin,
        reason: str,
        detail: str = "",
        input_hash: Any = None,
        text: Optional[str] = None,
    ) -> None:
        """Count one answer as rejected when only its origin is at hand (an
        accept withdrawn at merge time by the same annotator's later reject).

        origin (Origin): Where the answer was read.
        reason (str): The reason code.
        detail (str): The explanation (no annotator identity).
        input_hash (Any): `_input_hash`, written to rejections.jsonl.
        text (Optional[str]): The task's text (its first 200 characters are written).
        """
        self.rejected[reason] += 1
        self.rejected_by_source[origin.source] += 1
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(f"{origin}: {detail or reason}")
        if self.rejections_file is not None:
            record: Dict[str, Any] = origin.to_dict()
            record["reason"] = reason
            if detail:
                record["detail"] = detail
            if text is not None or input_hash is not None:
                record["_input_hash"] = input_hash
            if text is not None:
                record["text"] = text[:200]
            self.rejections_file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def check_balance(self) -> None:
        """Raise BalanceError unless read = kept + rejected + merged + duplicates."""
        total = self.kept + self.n_rejected + self.merged + self.duplicates
        if total != self.read:
            raise BalanceError(
                f"ledger does not balance: read {self.read} != kept {self.kept} + rejected "
                f"{self.n_rejected} + merged {self.merged} + duplicates {self.duplicates} = {total}"
            )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "rejected": self.n_rejected,
            "merged": self.merged,
            "duplicates": self.duplicates,
            "balanced": self.read == self.kept + self.n_rejected + self.merged + self.duplicates,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_examples": {k: v for k, v in sorted(self.examples.items())},
            "read_by_source": dict(self.read_by_source),
            "rejected_by_source": dict(self.rejected_by_source),
            "kept_by_split": dict(self.kept_by_split),
            "spans_misaligned": dict(self.spans_misaligned),
            "spans_dropped": dict(sorted(self.spans_dropped.items())),
            "spans_renamed": dict(sorted(self.spans_renamed.items())),
            "merge": {
                "groups_merged": self.groups_merged,
                "groups_with_disagreement": self.groups_with_disagreement,
                "superseded": self.superseded,
                "withdrawn": self.withdrawn,
                "disagreements_per_label": dict(sorted(self.disagreements.items())),
            },
            "binary_answers": dict(sorted(self.binary.items())),
            "warnings": list(self.warnings),
        }
