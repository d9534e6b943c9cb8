"""SARIF 2.1.0 (ruff `--output-format sarif`, semgrep, CodeQL, ESLint's formatter, bandit): one feedback per result.

Only the first physical location of a result is used. URIs are resolved against `originalUriBaseIds` when a
`uriBaseId` is given; a URI that leaves the repository (`../../etc/passwd`, another absolute path, an `https:`
URI) is dropped with a warning and counted, never followed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from redline.ci_hook.ingest.common import IngestOptions, bad, field_of, line_range, load_json, place
from redline.records import Feedback, Severity

LEVELS: dict[str, Severity] = {"error": "error", "warning": "warning", "note": "info", "none": "hint"}


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise bad(path, "not a SARIF log (no `runs` array)")
    version = doc.get("version")
    if version is not None and version != "2.1.0":
        raise bad(path, f"SARIF version {version!r} is not supported", fix="write SARIF 2.1.0")
    out: list[Feedback] = []
    for i, run in enumerate(doc["runs"]):
        where = f"runs[{i}]"
        tool = field_of(path, field_of(path, run, "tool", dict, where), "driver", dict, f"{where}.tool")
        source = str(tool.get("name") or "sarif").lower()
        rules = _rules(tool)
        bases = run.get("originalUriBaseIds") if isinstance(run.get("originalUriBaseIds"), dict) else {}
        results = field_of(path, run, "results", list, where, required=False) or []
        for j, result in enumerate(results):
            fb = _result(path, repo_root, result, f"{where}.results[{j}]", source, rules, bases, opts)
            if fb is not None:
                out.append(fb)
    return out


def _rules(driver: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """rule id → (description, default level) from the driver's rule metadata."""
    found = {}
    rules = driver.get("rules")
    for rule in rules if isinstance(rules, list) else []:
        if isinstance(rule, dict) and isinstance(rule.get("id"), str):
            desc = rule.get("shortDescription") or rule.get("fullDescription") or {}
            default = rule.get("defaultConfiguration")
            level = default.get("level") if isinstance(default, dict) else None
            found[rule["id"]] = (desc.get("text", "") if isinstance(desc, dict) else "", level)
    return found


def _result(report: Path, repo_root: Path, result: Any, where: str, source: str, rules: dict[str, tuple[str, Any]],
            bases: dict[str, Any], opts: IngestOptions) -> Feedback | None:
    rule = field_of(report, result, "ruleId", str, where, required=False)
    message = field_of(report, result, "message", dict, where)
    description, default_level = rules.get(rule or "", ("", None))
    text = message.get("text") or message.get("markdown") or description
    if not isinstance(text, str):
        raise bad(report, f"{where}.message.text must be a string")
    level = result.get("level") or default_level or "warning"  # SARIF §3.27.10: the rule's level, else warning
    if not isinstance(level, str) or level not in LEVELS:
        raise bad(report, f"{where}.level {level!r} is not a SARIF level")
    rel, rng = None, None
    locations = result.get("locations") or []
    if not isinstance(locations, list):
        raise bad(report, f"{where}.locations must be an array")
    if locations:
        physical = field_of(report, locations[0], "physicalLocation", dict, f"{where}.locations[0]", required=False)
        if physical:
            artifact = field_of(report, physical, "artifactLocation", dict, f"{where}.physicalLocation")
            uri = field_of(report, artifact, "uri", str, f"{where}.artifactLocation")
            resolved = _resolve(uri, artifact.get("uriBaseId"), bases)
            rel = place(report, repo_root, resolved, opts) if resolved is not None else None
            if resolved is None:
                opts.drop_outside(report, uri)
            if rel is None:
                return None
            region = physical.get("region") or {}
            if not isinstance(region, dict):
                raise bad(report, f"{where}.region must be an object")
            rng = line_range(region.get("startLine"), region.get("endLine"), region.get("startColumn"),
                             region.get("endColumn"))
    return Feedback(kind="diagnostic", source=source, message=text[:4000], path=rel, range=rng,
                    severity=LEVELS[level], rule=rule, commit=opts.commit, meta={"report": report.name})


def _resolve(uri: str, base_id: Any, bases: dict[str, Any]) -> str | None:
    """A file path for a SARIF URI (relative ones joined to their base), or None for a non-file scheme."""
    parsed = urlparse(uri)
    if parsed.scheme and parsed.scheme != "file" and len(parsed.scheme) > 1:  # one letter: a Windows drive
        return None
    if parsed.scheme == "file":
        return unquote(parsed.path)
    path = unquote(uri)
    if isinstance(base_id, str) and isinstance(bases.get(base_id), dict):
        base = bases[base_id].get("uri")
        if isinstance(base, str):
            base_path = _resolve(base, None, {})
            if base_path is None:
                return None
            return base_path.rstrip("/") + "/" + path
    return path
