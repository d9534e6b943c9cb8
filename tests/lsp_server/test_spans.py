"""Pure anchoring and settle logic: spans shift, shrink, are edited or deleted; edits settle into feedback."""

from __future__ import annotations

import pytest

from redline.lsp_server.settings import Settings, settings_from_options
from redline.lsp_server.spans import (
    TrackedSpan,
    apply_change,
    edit_feedback,
    edit_ready,
    fim_context,
    measure_due,
    on_save,
    reanchor,
    retained_chars,
    schedule,
)


def span(start: tuple[int, int] = (2, 4), end: tuple[int, int] = (4, 0), text: str = "x = 1\ny = 2\n") -> TrackedSpan:
    return TrackedSpan("g1", start, end, text, inserted_at=0.0, due=schedule(0.0, (30, 120, 600)))


def test_insert_above_shifts_lines() -> None:
    s = span()
    assert not apply_change([s], (0, 0), (0, 0), "a\nb\n", 1.0)
    assert (s.start, s.end, s.state) == ((4, 4), (6, 0), "live")


def test_insert_before_on_the_same_line_shifts_columns() -> None:
    s = span()
    apply_change([s], (2, 0), (2, 1), "abc", 1.0)
    assert (s.start, s.end) == ((2, 6), (4, 0))


def test_typing_at_either_boundary_does_not_grow_the_span() -> None:
    s = span()
    apply_change([s], (2, 4), (2, 4), "zz", 1.0)
    apply_change([s], (4, 0), (4, 0), "tail\n", 1.0)
    assert (s.start, s.end, s.state) == ((2, 6), (4, 0), "live")


def test_change_inside_marks_edited_and_moves_the_end() -> None:
    s = span()
    assert apply_change([s], (3, 0), (3, 1), "why\nnot", 5.0)
    assert (s.start, s.end, s.state, s.touched_at) == ((2, 4), (5, 0), "edited", 5.0)


def test_change_across_the_start_or_end_shrinks() -> None:
    s = span()
    apply_change([s], (2, 0), (3, 0), "", 1.0)
    assert (s.start, s.end, s.state) == ((2, 0), (3, 0), "edited")
    t = span()
    apply_change([t], (3, 2), (9, 0), "", 1.0)
    assert (t.start, t.end, t.state) == ((2, 4), (3, 2), "edited")


def test_change_covering_the_span_deletes_it() -> None:
    s = span()
    apply_change([s], (1, 0), (5, 0), "", 1.0)
    assert (s.state, s.start, s.end, s.covered) == ("deleted", (1, 0), (1, 0), False)
    apply_change([s], (0, 0), (0, 0), "\n", 2.0)  # a deleted span still moves with the text
    assert s.start == (2, 0)


def test_formatter_rewrite_is_found_again_by_content() -> None:
    s = span((1, 0), (3, 0))
    source = "a\nx = 1\ny = 2\nb\n"
    apply_change([s], (0, 0), (4, 0), "# header\n" + source, 1.0)
    assert s.covered and s.state == "deleted"
    assert reanchor(s, "# header\n" + source)
    assert (s.start, s.end, s.state) == ((2, 0), (4, 0), "live")


def test_reanchor_by_lines_when_whitespace_changed() -> None:
    s = span((0, 0), (2, 0))
    assert reanchor(s, "z\nx = 1   \ny = 2\n")
    assert (s.start, s.end) == ((1, 0), (3, 0))
    assert not reanchor(s, "nothing like it\n")


def test_utf16_units_count_astral_characters_twice() -> None:
    def utf16(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    s = span((0, 4), (0, 8), "abcd")
    apply_change([s], (0, 0), (0, 0), "😋", 1.0, utf16)
    assert (s.start, s.end) == ((0, 6), (0, 10))


def test_retained_characters() -> None:
    assert retained_chars("return a + b", "return a + b") == 12
    assert retained_chars("return a + b", "return a - b") == 11
    assert retained_chars("abc", "") == 0
    assert retained_chars("a" * 5000, "a" * 4000 + "b") == 4000  # the cheap estimate above the diff budget


def test_edit_settles_after_save_and_last_checkpoint() -> None:
    s = span()
    apply_change([s], (3, 0), (3, 1), "z", 10.0)
    s.text = "x = 1\nz = 2\n"
    assert not edit_ready(s, 100.0, 30)  # never saved
    on_save([s], 20.0)
    assert not edit_ready(s, 40.0, 30)  # settled, but the 2m and 10m checkpoints are still to come
    assert measure_due(s, 600.0)
    assert s.retained == {"30s": 11, "2m": 11, "10m": 11}
    assert edit_ready(s, 600.0, 30)
    fb = edit_feedback(s, "m.py")
    assert (fb.kind, fb.correction, fb.generation_id) == ("edit", "x = 1\nz = 2\n", "g1")
    assert fb.meta["retained_chars"]["10m"] == 11 and fb.range is not None and fb.range.start_line == 2
    assert edit_ready(s, 25.0, 30, flush=True)  # closing the document records a saved change at once


def test_fim_context_is_capped_at_line_boundaries() -> None:
    source = "line1\nline2\nline3\nMIDDLE\nline5\nline6\n"
    start = source.index("MIDDLE")
    prefix, suffix = fim_context(source, start, start + 7, 9, 9)
    assert prefix == "line3\n" and suffix == "line5\n"
    assert fim_context(source, start, start + 7, 1000, 1000) == (source[:start], source[start + 7:])


def test_settings_from_initialization_options() -> None:
    settings, warnings = settings_from_options({"settleSeconds": 5, "retentionCheckpoints": [600, 30],
                                                "trackSpans": "yes", "bogus": 1})
    assert settings.settle_seconds == 5 and settings.retention_checkpoints == (30, 600)
    assert settings.track_spans is True
    assert warnings == ["setting 'trackSpans' has a bad value 'yes'; using the default",
                        "unknown setting 'bogus' ignored"]
    assert settings_from_options({"redline": {"manualClock": True}})[0].manual_clock
    assert settings_from_options("nonsense")[0] == Settings()
    assert settings_from_options([]) == (Settings(), [])


@pytest.mark.parametrize("raw", [[], None, "x", [-1]])
def test_bad_checkpoints_keep_the_default(raw: object) -> None:
    assert settings_from_options({"retentionCheckpoints": raw})[0].retention_checkpoints == (30.0, 120.0, 600.0)


def test_line_buffer_matches_pygls_document_on_random_edits() -> None:
    import random

    from lsprotocol import types
    from pygls.workspace import TextDocument

    from redline.lsp_server.documents import LineBuffer

    rnd = random.Random(3)
    text = "".join(f"line {i} é😋\n" for i in range(30))
    ours, theirs = LineBuffer(text), TextDocument("file:///t.py", text)
    utf16 = theirs.position_codec.client_num_units
    def column(line_no: int) -> int:  # a character boundary inside the line (pygls clamps others differently)
        if line_no >= len(ours.lines):
            return 0
        body = ours.lines[line_no].rstrip("\n")
        return utf16(body[:rnd.randrange(len(body) + 1)])

    for _ in range(300):
        l1 = rnd.randrange(len(ours.lines) + 1)
        l2 = min(l1 + rnd.choice([0, 0, 1, 2]), len(ours.lines))
        c1, c2 = column(l1), column(l2)
        if (l2, c2) < (l1, c1):
            c2 = c1
        new = rnd.choice(["", "x", "\n", "ab\ncd", "😋"])
        ours.apply((l1, c1), (l2, c2), new, utf16)
        theirs.apply_change(types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(l1, c1), types.Position(l2, c2)), text=new))
        assert ours.source == theirs.source


def test_span_index_agrees_with_the_reference_on_random_edits() -> None:
    import copy
    import random

    from redline.lsp_server.spans import SpanIndex

    rnd = random.Random(11)
    spans = [TrackedSpan(f"g{i}", (i * 7 + rnd.randrange(3), rnd.randrange(4)), (i * 7 + 3, rnd.randrange(4)), "t", 0.0)
             for i in range(120)]
    spans.append(TrackedSpan("outer", (100, 0), (300, 0), "big", 0.0))  # overlaps many others
    reference = copy.deepcopy(spans)
    index = SpanIndex(spans)
    for step in range(2000):
        l1 = rnd.randrange(900)
        l2 = l1 + rnd.choice([0, 0, 0, 1, 3, 20])
        c1, c2 = rnd.randrange(5), rnd.randrange(5)
        text = rnd.choice(["", "x", "\n", "\n\n  ", "ab\nc"])
        a = apply_change(reference, (l1, c1), (l2, c2), text, float(step))
        b = index.apply((l1, c1), (l2, c2), text, float(step))
        assert a == b
        if step % 97 == 0:
            got = {s.generation_id: (s.start, s.end, s.state) for s in index.all()}
            assert got == {s.generation_id: (s.start, s.end, s.state) for s in reference}
    got = {s.generation_id: (s.start, s.end, s.state) for s in index.all()}
    assert got == {s.generation_id: (s.start, s.end, s.state) for s in reference}
