"""W3C Trace Context Level 2 ``tracestate``, one test per rule of the specification.

Rules quoted from w3c/trace-context ``spec/20-http_request_header_format.md``
("Tracestate Header" and "Mutating the tracestate Field") and
``spec/30-processing-model.md``; duplicated keys from w3c/trace-context #477
and #552. The parser is ``tenantrace.propagation.tracestate``; the HTTP tests
go through ``extract_trace_context`` / ``inject_trace_context`` as a service does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import TraceState

from tenantrace import TelemetryConfig
from tenantrace.propagation import extract_trace_context, inject_trace_context
from tenantrace.propagation.tracestate import (
    Level2TraceState,
    is_valid_key,
    is_valid_value,
    parse_tracestate,
)
from tenantrace.testing import SpanCapture, capture_spans

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
VALID = f"00-{TRACE}-{PARENT}-01"

KEY_RE = r"[a-z0-9][a-z0-9_\-*/@]{0,255}"
VALUE_RE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans(TelemetryConfig(exporter_type="memory", cross_tenant_traces="keep")) as s:
        yield s


def header(*fields: str) -> str | None:
    state = parse_tracestate(list(fields))
    return None if state is None else state.to_header()


def hop(spans: SpanCapture, *fields: str) -> tuple[TraceState, str | None]:
    """Extract, run a span, inject: the remote parent's state and the tracestate written."""
    ctx = extract_trace_context([("traceparent", VALID), *(("tracestate", f) for f in fields)])
    remote = trace_api.get_current_span(ctx).get_span_context()
    assert f"{remote.trace_id:032x}" == TRACE  # a tracestate never costs the traceparent
    with spans.manager.span("hop", context=ctx):
        out = inject_trace_context()
    return remote.trace_state, out.get("tracestate")


# --------------------------------------------------------------------- the key


@pytest.mark.parametrize("key", ["a", "z", "0", "9", "1abc", "0@0"])
def test_key_begins_with_a_lowercase_letter_or_a_digit(key: str) -> None:
    # key = ( lcalpha / DIGIT ) 0*255 ( keychar ): "A key MUST begin with a
    # lowercase letter or a digit" (Level 1 allowed a digit first only before "@").
    assert is_valid_key(key)
    assert header(f"{key}=1") == f"{key}=1"


@pytest.mark.parametrize("key", ["@a", "_a", "-a", "*a", "/a", "Aa", "", "\u00e9a"])
def test_key_may_not_begin_with_anything_else(key: str) -> None:
    # key = ( lcalpha / DIGIT ) ...: "@" and the other keychars only after the first.
    assert not is_valid_key(key)
    assert header(f"{key}=1,b=2") is None


def test_key_characters_are_keychar() -> None:
    # keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@"
    assert header(f"{key}=1") == f"{key}=1"
    for bad in "ABZ.:;!#$%&+~^|'\"\\ \t\u00e9\x00":
        assert not is_valid_key(f"a{bad}b"), repr(bad)


@pytest.mark.parametrize("key", ["foo@", "foo@@bar", "foo@bar@baz", "a@b@c@d", "1@2", "x@-"])
def test_at_sign_is_an_ordinary_keychar(key: str) -> None:
    # Level 2 keychar includes "@" with no structure: Level 1's multi-tenant-key
    # (tenant-id "@" system-id, one "@", a letter after it) is gone.
    assert header(f"{key}=1,bar=2") == f"{key}=1,bar=2"


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("k" * 256, True),
        ("k" * 257, False),
        ("t" * 241 + "@" + "v" * 14, True),
        ("t" * 242 + "@v", True),  # Level 1: tenant over 241 characters
        ("t@" + "v" * 15, True),  # Level 1: system over 14 characters
        ("t" * 200 + "@" + "v" * 55, True),  # 256 in all
        ("t" * 200 + "@" + "v" * 56, False),  # 257 in all
    ],
)
def test_key_is_at_most_256_characters_in_all(key: str, valid: bool) -> None:
    # "contain up to 256 characters": the whole key, wherever its "@" signs are.
    assert is_valid_key(key) is valid
    assert header(f"{key}=1") == (f"{key}=1" if valid else None)


# ------------------------------------------------------------------- the value


def test_value_is_printable_ascii_but_comma_and_equals() -> None:
    # value = 0*255(chr) nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; chr = %x20 / nblk-chr
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=") + "x"
    assert len(value) <= 256
    assert header(f"k={value}") == f"k={value}"


@pytest.mark.parametrize("bad", ["\t", "\x00", "\x1f", "\x7f", "\u00e9", "\u2028", "="])
def test_value_excludes_other_characters(bad: str) -> None:
    # "printable ASCII (0x20 to 0x7E) except comma and '='": "this also excludes
    # tabs, newlines, carriage returns, etc." ("," would split the member.)
    assert not is_valid_value(f"a{bad}b")
    assert header(f"k=a{bad}b,j=1") is None


@pytest.mark.parametrize(("length", "valid"), [(1, True), (256, True), (257, False)])
def test_value_is_1_to_256_characters(length: int, valid: bool) -> None:
    # value = 0*255(chr) nblk-chr: at least one character, at most 256.
    assert is_valid_value("v" * length) is valid
    assert not is_valid_value("")
    assert header(f"k={'v' * length}") == (f"k={'v' * length}" if valid else None)


def test_value_does_not_end_with_a_space() -> None:
    # "must end with a character which is not a space": a trailing space is OWS.
    assert not is_valid_value("ab ")
    assert header("k=ab  ,j=1") == "k=ab,j=1"  # trailing spaces are OWS, not value


def test_leading_spaces_of_a_value_are_preserved() -> None:
    # "All leading spaces MUST be preserved as part of the value."
    state = parse_tracestate(["k=  ab,j= 1"])
    assert state is not None and dict(state) == {"k": "  ab", "j": " 1"}


@pytest.mark.parametrize("member", ["k=", "k=   ", "k", "=v", "k==v", "k=a=b"])
def test_a_member_is_key_equals_value(member: str) -> None:
    # list-member = key "=" value: one "=", a key and a non-empty value.
    assert header(f"{member},j=1") is None


# -------------------------------------------------------------------- the list


def test_multiple_fields_are_combined_in_order() -> None:
    # "When receiving multiple tracestate header fields, they MUST be combined
    # into a single header according to RFC7230" (joined with commas, in order).
    assert header("a=1,b=2", "c=3", "d=4") == "a=1,b=2,c=3,d=4"


def test_spaces_and_tabs_around_members_are_ignored() -> None:
    # "Spaces and horizontal tabs surrounding list-members are ignored."
    assert header(" \ta=1 \t, \tb=2\t ") == "a=1,b=2"


@pytest.mark.parametrize("fields", [[""], [" "], ["\t, ,"], ["", ""], [",a=1,,b=2,", " "]])
def test_empty_and_whitespace_only_members_are_allowed(fields: list[str]) -> None:
    # list-member = OWS; "Vendors MUST accept empty tracestate headers but SHOULD
    # avoid sending them": an empty state, and no tracestate written.
    expected = "a=1,b=2" if "a=1" in fields[0] else ""
    assert header(*fields) == expected


def test_no_tracestate_is_sent_for_an_empty_one(spans: SpanCapture) -> None:
    # "Vendors MUST accept empty tracestate headers but SHOULD avoid sending them."
    assert hop(spans, " , ", "")[1] is None


def _members(count: int) -> str:
    return ",".join(f"k{i:02d}=v{i}" for i in range(count))


def test_32_members_are_kept() -> None:
    # list = list-member 0*31( OWS "," OWS list-member ): 32 key/value members.
    # Empty members are not counted (they are allowed for merging several fields).
    state = parse_tracestate([_members(32) + ", , ,,"])
    assert state is not None and len(state) == 32


def test_more_than_32_members_discard_the_tracestate() -> None:
    # "There can be a maximum of 32 list-members"; a header that cannot be parsed
    # MAY be discarded whole (processing model): we do, as the W3C suite expects.
    assert parse_tracestate([_members(33)]) is None
    assert parse_tracestate([_members(20), _members(13).replace("k", "j")]) is None


def test_an_invalid_member_discards_the_whole_tracestate() -> None:
    # Processing model: "If the tracestate header cannot be parsed the vendor MAY
    # discard the entire header. Invalid tracestate entries MAY also be discarded."
    # We discard it whole, as Level 1 did and as the W3C suite expects.
    assert parse_tracestate(["a=1,B=2,c=3"]) is None
    assert parse_tracestate(["a=1", "c=x,y"]) is None  # "y" is a member without "="


# ------------------------------------------------------------- duplicated keys


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["foo=1,foo=1"], "foo=1"),
        (["foo=1,foo=2"], "foo=1"),
        (["foo=1", "foo=2"], "foo=1"),
        (["a=1,foo=2,b=3,foo=4,c=5"], "a=1,foo=2,b=3,c=5"),
    ],
)
def test_a_duplicated_key_keeps_its_left_most_entry(fields: list[str], expected: str) -> None:
    # "Only one entry per key is allowed"; a receiver MAY keep duplicates or drop
    # them, and does not discard the header for them (#477, #552). The left-most
    # is the most recent position: an updated key moves to the left.
    assert header(*fields) == expected


def test_duplicates_count_toward_the_32_members() -> None:
    # The received list holds 33 list-members, one key twice: over the limit.
    assert parse_tracestate([_members(32) + ",k00=again"]) is None


# ------------------------------------------------ traceparent and tracestate


def test_tracestate_is_not_parsed_when_traceparent_fails(spans: SpanCapture) -> None:
    # "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate."
    ctx = extract_trace_context({"traceparent": "00-garbage", "tracestate": "a=1,BAD=2"})
    assert not trace_api.get_current_span(ctx).get_span_context().is_valid
    assert "propagation.tracestate_dropped" not in spans.manager.get_stats()


def test_a_tracestate_failure_does_not_affect_the_traceparent(spans: SpanCapture) -> None:
    # "failure to parse tracestate MUST NOT affect the parsing of traceparent."
    state, written = hop(spans, "a=1,BAD=2")
    assert (len(state), written) == (0, None)
    assert spans.manager.get_stats()["propagation.tracestate_dropped"] == 1


# ------------------------------------------------------------ propagated onward


def test_a_received_tracestate_is_sent_on_unchanged(spans: SpanCapture) -> None:
    # "Vendors receiving a tracestate request header MUST send it to outgoing
    # requests" (mutating the tracestate field): members, values, order as received.
    sent = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,7@x@y=  v ~,a/b*c= 1"
    state, written = hop(spans, sent)
    assert isinstance(state, Level2TraceState)
    assert written == sent


def test_the_largest_legal_tracestate_is_sent_whole(spans: SpanCapture) -> None:
    # "Vendors SHOULD propagate at least 512 characters"; truncation, when a vendor
    # must, drops whole entries from the end. 32 members of 256 + 256 characters
    # are legal and sent whole: no limit of ours forces a truncation. (Each header
    # field is bounded to 8192 characters, so 16 KiB arrive as several fields.)
    members = [f"{i:02d}{'k' * 254}={'v' * 255}{i % 10}" for i in range(32)]
    fields = [",".join(members[i : i + 8]) for i in range(0, 32, 8)]
    _, written = hop(spans, *fields)
    assert written == ",".join(members)


def test_spans_and_their_export_carry_the_level_2_state(spans: SpanCapture) -> None:
    # The state reaches the SDK's spans (the sampler hands the parent's on) and
    # their OTLP encoding, not only the outgoing header.
    sent = "foo@bar@baz=1,1abc=2"
    hop(spans, sent)
    raw = spans.one("hop").raw
    context = raw.get_span_context() if raw is not None else None
    assert raw is not None and context is not None
    assert context.trace_state.to_header() == sent
    encoded = encode_spans([raw]).resource_spans[0].scope_spans[0].spans[0]
    assert encoded.trace_state == sent


# ------------------------------------------------------------------- mutations


def test_update_moves_the_key_to_the_beginning() -> None:
    # "Modified keys MUST be moved to the beginning (left) of the list", "the order
    # of unmodified key/value pairs MUST be preserved".
    state = Level2TraceState([("a", "1"), ("b@x", "2"), ("c", "3")])
    assert state.update("b@x", "9").to_header() == "b@x=9,a=1,c=3"
    assert state.to_header() == "a=1,b@x=2,c=3"  # immutable


def test_add_puts_a_new_key_at_the_beginning_once() -> None:
    # "The new key/value pair SHOULD be added to the beginning of the list";
    # "Adding a key/value pair MUST NOT result in the same key being present
    # multiple times" (#477).
    state = Level2TraceState([("a", "1")])
    assert state.add("1x@y", "2").to_header() == "1x@y=2,a=1"
    assert state.add("a", "2") is state


def test_adding_a_33rd_member_removes_the_right_most() -> None:
    # Level 2: "If adding an entry would cause the tracestate list to contain more
    # than 32 list-members the right-most list-member should be removed".
    state = parse_tracestate([_members(32)])
    assert state is not None
    for grown in (state.add("new", "1"), state.update("new", "1")):
        assert len(grown) == 32
        assert list(grown)[:2] == ["new", "k00"] and "k31" not in grown
    assert len(state.update("k31", "x")) == 32  # an update of a present key removes nothing


def test_delete_keeps_the_order_of_the_others() -> None:
    # "Delete a key/value pair. Any key/value pair MAY be deleted."
    state = Level2TraceState([("a", "1"), ("b", "2"), ("c", "3")])
    assert state.delete("b").to_header() == "a=1,c=3"
    assert state.delete("zz") is state


def test_invalid_pairs_are_refused_as_the_base_class_does() -> None:
    state = Level2TraceState([("a", "1"), ("B", "2"), ("c", "x,y"), ("a", "3")])
    assert state.to_header() == "a=1"
    assert state.add("@x", "1") is state and state.update("x", "") is state
    assert len(Level2TraceState([(f"k{i}", "v") for i in range(33)])) == 0


def test_level2_trace_state_overrides_every_public_method_of_the_base() -> None:
    # It keeps its members apart from the base's storage: a method of
    # OpenTelemetry's TraceState it did not override would see an empty state.
    # This fails when a new OpenTelemetry release adds one.
    public = {name for name in vars(TraceState) if not name.startswith("_")}
    dunder = {"__contains__", "__getitem__", "__iter__", "__len__", "__repr__", "__init__"}
    missing = (public | dunder) - set(vars(Level2TraceState))
    assert not missing


def test_from_header_is_the_level_2_parser() -> None:
    assert Level2TraceState.from_header(["foo@=1", "bar=2"]).to_header() == "foo@=1,bar=2"
    assert len(Level2TraceState.from_header(["foo=1,BAR=2"])) == 0
    assert isinstance(Level2TraceState.get_default(), Level2TraceState)


# ----------------------------------------------------------- property tests

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_ows = st.text(alphabet=" \t", max_size=3)


@st.composite
def valid_tracestates(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[str]]:
    """Valid Level 2 members (unique keys, at most 32), and header fields holding them
    with optional whitespace and empty members, split over one or more fields."""
    members = draw(
        st.lists(
            st.tuples(
                st.from_regex(KEY_RE, fullmatch=True), st.from_regex(VALUE_RE, fullmatch=True)
            ),
            max_size=32,
            unique_by=lambda member: member[0],
        )
    )
    pieces = [draw(_ows) + f"{key}={value}" + draw(_ows) for key, value in members]
    for _ in range(draw(st.integers(0, 3))):  # empty members, anywhere
        pieces.insert(draw(st.integers(0, len(pieces))), draw(_ows))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(pieces) - 1, 1)), max_size=3)))
    fields = [",".join(pieces[a:b]) for a, b in zip([0, *cuts], [*cuts, len(pieces)], strict=True)]
    return members, fields


@_SETTINGS
@given(drawn=valid_tracestates())
def test_valid_level_2_members_round_trip(
    spans: SpanCapture, drawn: tuple[list[tuple[str, str]], list[str]]
) -> None:
    # Any tracestate of valid members: extract then inject gives the same members
    # in the same order (without the optional whitespace and empty members).
    members, fields = drawn
    state, written = hop(spans, *fields)
    assert list(state.items()) == members
    assert written == (",".join(f"{k}={v}" for k, v in members) or None)


_hostile = st.text(alphabet=st.sampled_from(list(",= \t@aZ09_-*/.\x00\x7f\u00e9~\n")), max_size=600)


@_SETTINGS
@given(fields=st.lists(_hostile | st.text(max_size=100), max_size=40))
def test_no_input_makes_extraction_raise(spans: SpanCapture, fields: list[str]) -> None:
    state = parse_tracestate(fields)
    if state is not None:  # whatever is kept is valid and written back as kept
        assert all(is_valid_key(k) and is_valid_value(v) for k, v in state.items())
        again = parse_tracestate([state.to_header()])
        assert again is not None and list(again.items()) == list(state.items())
    ctx = extract_trace_context(
        [("traceparent", VALID), *(("tracestate", f) for f in fields)], trust=True
    )
    assert f"{trace_api.get_current_span(ctx).get_span_context().trace_id:032x}" == TRACE


# Inputs built to make a careless parser slow: long keys or values, many members,
# long runs of separators or whitespace, "@" runs, members just over the limits.
_SHAPES: dict[str, Callable[[int], str]] = {
    "one long key": lambda n: "k" * n + "=1",
    "one long value": lambda n: "k=" + "v" * n,
    "value of spaces": lambda n: "k=" + " " * n + "x",
    "commas": lambda n: "," * n,
    "whitespace": lambda n: " \t" * (n // 2),
    "at signs": lambda n: "a" + "@" * n + "=1",
    "equals": lambda n: "=" * n,
    "many members": lambda n: ",".join(["k=v"] * (n // 4)),
    "empty members": lambda n: "k=v" + ", " * (n // 2),
    "257-character keys": lambda n: ",".join(["k" * 257 + "=v"] * (n // 260)),
}


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        parse_tracestate([text])
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("shape", list(_SHAPES))
def test_parsing_time_is_linear_in_the_input(shape: str) -> None:
    # The carrier bounds each field to 8192 characters and 33 fields; the parser
    # itself is linear. 64 times the input: about 64 times the time (up to ~130
    # measured, allocation costs growing, and a loaded machine's noise), where a
    # quadratic parser takes 4,096: the bound sits far from both.
    small, large = _SHAPES[shape](8_192), _SHAPES[shape](524_288)
    ratio = _seconds(large) / max(_seconds(small), 1e-6)
    assert ratio < 640, f"{shape}: 64x the input took {ratio:.0f}x the time"
