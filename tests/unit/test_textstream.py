"""Stop strings that arrive split across tokens."""

from __future__ import annotations

from desktop.core.stop_matcher import StopMatcher


def test_stop_split_across_tokens_is_found_and_cut() -> None:
    m = StopMatcher(("<end>",))
    assert not m.feed("Hello <e")
    assert m.feed("nd> rest")
    assert m.matched == "<end>"
    assert m.text() == "Hello "


def test_releasable_holds_back_a_possible_prefix() -> None:
    m = StopMatcher(("STOP",))
    m.feed("abc ST")
    assert m.releasable() == "abc "
    m.feed("ILL")
    assert m.releasable() == "STILL"


def test_no_stops_passes_everything() -> None:
    m = StopMatcher(())
    for part in ("a", "b", "c"):
        assert not m.feed(part)
    assert m.text() == "abc"
    assert m.releasable() == "abc"


def test_long_stream_releases_exactly_the_text_before_the_stop() -> None:
    m = StopMatcher(("<END>", "\n\n"))
    released = []
    pieces = [f"w{i} " for i in range(20_000)] + ["<E", "N", "D> tail"]
    for piece in pieces:
        m.feed(piece)
        released.append(m.releasable())
    assert "".join(released) == m.text() == "".join(pieces[:-3])
    assert m.matched == "<END>"
