"""CI report parsers, one module per format, all `parse(path, repo_root, opts) -> list[Feedback]`.

`ingest_files` is the one entry point the CLI uses: every report is parsed whole first, then queued in one
transaction, so a bad report writes nothing and the others still land.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redline.ci_hook.ingest.common import IngestOptions
from redline.ci_hook.ingest.detect import FORMATS, detect
from redline.ci_hook.recheck import attach
from redline.config import Config
from redline.errors import RecordError, RedlineError
from redline.queue.protocol import Store
from redline.records import Feedback

Parser = Callable[[Path, Path, IngestOptions | None], list[Feedback]]

_MODULES = {"junit": "junit", "sarif": "sarif", "mypy": "mypy_json", "ruff": "ruff_json",
            "reportlog": "reportlog", "github": "github"}


def parser_for(fmt: str) -> Parser:
    module = importlib.import_module(f"redline.ci_hook.ingest.{_MODULES[fmt]}")
    parse: Parser = module.parse
    return parse


def parse_report(path: Path, repo_root: Path, fmt: str | None = None, opts: IngestOptions | None = None
                 ) -> list[Feedback]:
    """Detect the format (unless given) and parse the whole report; raises one-line `RedlineError`s."""
    fmt = fmt or detect(path)
    try:
        return parser_for(fmt)(path, repo_root, opts)
    except RedlineError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        # the parsers check every field they read; this is the net under a shape nobody foresaw
        raise RecordError(f"malformed {fmt} report ({type(exc).__name__})", fix="check the file and --format",
                          path=path) from None


@dataclass
class FileResult:
    path: Path
    format: str | None = None
    parsed: int = 0
    added: int = 0
    #: findings set aside because another process held the queue (merged on its next open)
    spooled: int = 0
    error: str | None = None


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)
    opts: IngestOptions = field(default_factory=IngestOptions)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error]


def ingest_files(store: Store, config: Config, paths: Sequence[Path], *, fmt: str | None = None,
                 opts: IngestOptions | None = None, hints: bool = True) -> IngestSummary:
    """Parse and queue each report in its own transaction; a bad report is recorded as an error, not raised."""
    from redline.attribution import Attributor
    from redline.ci_hook.generated import add_commit_hints
    from redline.ledger import record

    summary = IngestSummary(opts=opts or IngestOptions(trusted_associations=config.trusted_associations))
    attributor = Attributor(store, config.repo_root)  # each file placed once for all reports
    for path in paths:
        result = FileResult(path)
        summary.files.append(result)
        try:
            result.format = fmt or detect(path)
            feedback = parse_report(path, config.repo_root, result.format, summary.opts)
            attach(feedback, fmt=result.format, recheck=summary.opts.recheck)
            if hints:
                add_commit_hints(config.repo_root, feedback)
            result.parsed = len(feedback)
            added = record(store, config, feedback=feedback, attributor=attributor)
            result.added, result.spooled = added.feedback, added.spooled
        except RedlineError as exc:  # the queue's own errors (a record it refuses) name no file: add it
            result.error = exc.one_line() if exc.path else f"{path}: {exc.one_line()}"
        except Exception as exc:  # a shape no check foresaw: this report fails, the others still land
            text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
            result.error = f"{path}: cannot ingest ({type(exc).__name__}{': ' + text if text else ''})"
    return summary


__all__ = ["FORMATS", "FileResult", "IngestOptions", "IngestSummary", "detect", "ingest_files", "parse_report",
           "parser_for"]
