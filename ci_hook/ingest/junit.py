"""JUnit XML (pytest `--junitxml`, and most test runners): each failed or errored test case becomes feedback.

Parsed with defusedxml, so entity bombs and external entities are refused. pytest's default family (xunit2)
has no file or line attributes; then the location comes from the innermost project frame in the failure text,
or from the class name (`pkg.test_mod.TestX` → `pkg/test_mod.py`).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from redline.attribution import repo_relative
from redline.ci_hook.ingest.common import IngestOptions, bad, read_text, traceback_frames
from redline.records import Feedback, Range

SOURCE = "junit"


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    text = read_text(path)
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise bad(path, f"the XML uses a forbidden construct ({type(exc).__name__})",
                  fix="remove the DTD or entities; test reports never need them") from None
    except (ParseError, ValueError) as exc:
        raise bad(path, f"the XML is malformed ({str(exc)[:120]})", fix="check the file is complete") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise bad(path, f"the root element is <{root.tag}>, not <testsuites> or <testsuite>")
    out = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                fb = _feedback(path, repo_root, case, child, opts)
                if fb is not None:
                    out.append(fb)
    return out


def _feedback(report: Path, repo_root: Path, case: Element, child: Element, opts: IngestOptions) -> Feedback | None:
    classname = case.get("classname", "")
    name = case.get("name", "")
    text = child.text or ""
    message = child.get("message") or (text.strip().splitlines() or [child.tag])[-1]
    where, line = _location(repo_root, case, text)
    if where is None and case.get("file"):  # `file="/etc/passwd"`: outside the repo, dropped and counted
        opts.drop_outside(report, case.get("file", ""))
        return None
    rng = Range(line, line + 1) if where and line is not None else None
    return Feedback(
        kind="test_failure", source=SOURCE, message=message[:2000], detail=text or None, path=where, range=rng,
        rule=f"{classname}::{name}" if classname else name, commit=opts.commit,
        meta={"outcome": child.tag, "type": child.get("type"), "test": name, "classname": classname,
              "report": report.name},
    )


def _location(repo_root: Path, case: Element, text: str) -> tuple[str | None, int | None]:
    """Repo-relative path and 0-based line: innermost project frame, else the case's file/line, else classname."""
    for frame_path, frame_line in traceback_frames(text):
        rel = repo_relative(repo_root, frame_path)
        if rel is not None and (repo_root / rel).is_file():
            return rel, max(frame_line - 1, 0)
    file_attr = case.get("file")
    if file_attr:
        rel = repo_relative(repo_root, file_attr)
        line = case.get("line")
        number = int(line) if rel and line and re.fullmatch(r"[0-9]{1,9}", line) else None
        return rel, number  # pytest writes 0-based lines
    parts = case.get("classname", "").split(".")
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[:n]) + ".py"
        if (repo_root / candidate).is_file():
            return candidate, None
    return None, None
