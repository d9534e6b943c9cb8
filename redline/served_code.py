"""Where a served completion stands in its file, found without the editor's help.

`redline serve` and `redline proxy` record what a completion plugin asked (the prompt: the file's text before the
cursor, and after it for fill-in-the-middle) and the file's path, but not where the answer landed: only the
language server sees insertions. A user whose plugin never reports them, or who harvests in CI, still has the
completion's own context: the answer goes right after the prompt's last line. So a completion is placed where
its lines follow the prompt's last lines in the file — verbatim, re-indented (each line's own whitespace aside,
as an editor re-indents accepted text), or only its leading lines (a partial accept) — and nowhere else: a
completion the user rejected and then wrote something like by hand is not found, so no finding on the human's
code is given to the model.

Pure: no I/O. The attribution engine (`redline.attribution.Attributor`) calls it for each served generation of a
file that no span tracks yet, and the ledger records the span it returns.
"""

from __future__ import annotations

from redline.records import Generation, Range, Span

#: fewest characters (whitespace aside) of the completion that must stand in the file for it to be placed
MIN_CHARS = 4


def _norm(line: str) -> str:
    return " ".join(line.split())


def place_served(generation: Generation, path: str, file_text: str) -> Span | None:
    """The span `generation`'s completion occupies in `file_text` now, as whole lines, or None when it is not
    there right after its prompt's context."""
    before = generation.prompt.prefix if generation.prompt_format == "fim" else (
        generation.prompt.text if generation.prompt_format == "raw" else None)
    if before is None or len(_norm(generation.completion).replace(" ", "")) < MIN_CHARS:
        return None
    head, _, cursor_line = before.rpartition("\n")
    full = head.split("\n") if "\n" in before else []
    context = [_norm(x) for x in full if x.strip()][-1:]
    gap = len(full) - 1 - max((i for i, x in enumerate(full) if x.strip()), default=-1)  # blank lines after it
    # the lines the completion's text occupies: its first line continues the cursor's line
    want = [_norm(x) for x in (cursor_line + generation.completion).split("\n")]
    if want and not want[-1]:
        want.pop()  # a completion ending with a newline ends its last line
    if not any(want):
        return None
    lines = [_norm(x) for x in file_text.split("\n")]
    cursor = len(_norm(cursor_line).replace(" ", ""))
    best: tuple[int, int, int] | None = None  # (characters of the completion matched, start, lines)
    for start in _starts(lines, context, gap):
        rows, chars = _match(lines, start, want)
        chars -= cursor
        if rows and chars >= MIN_CHARS and (best is None or chars > best[0]):
            best = (chars, start, rows)
    if best is None:
        return None
    return Span(generation.id, path, Range(best[1], best[1] + best[2]), generation.completion)


def _starts(lines: list[str], context: list[str], gap: int) -> list[int]:
    """The cursor's line wherever the prompt's last full line stands in the file, as many blank lines below it as
    in the prompt; the file's first line when the prompt had no full line."""
    if not context:
        return [0]
    return [i + 1 + gap for i, line in enumerate(lines)
            if line == context[0] and all(not x for x in lines[i + 1:i + 1 + gap])]


def _match(lines: list[str], start: int, want: list[str]) -> tuple[int, int]:
    """(lines, characters) of the completion's lines found in order from `start`. A file line may run on past the
    completion's first or last line (the suffix continues it), and the last one found may stop short of the
    completion's line (the user accepted only a leading part)."""
    rows = chars = 0
    for k, w in enumerate(want):
        i = start + k
        if i >= len(lines):
            break
        have = lines[i]
        if have == w or ((k == 0 or k == len(want) - 1) and have.startswith(w)):
            rows, chars = rows + 1, chars + len(w.replace(" ", ""))
            continue
        if have and w.startswith(have):  # a partial accept: the user took this line only in part
            rows, chars = rows + 1, chars + len(have.replace(" ", ""))
        break
    return rows, chars
