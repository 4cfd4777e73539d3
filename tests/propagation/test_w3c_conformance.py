"""W3C Trace Context conformance, written from the specification's rules and its test suite.

``tracestate`` follows Level 2 (the editor's draft): keys may hold ``@``
anywhere but first and are limited to 256 characters in all, and duplicated
keys no longer discard the header. The harness's
``test_tracestate_key_illegal_vendor_format`` and ``test_tracestate_key_length_limit``
still assert Level 1's ``tenant@system`` keys (and older copies of it
``test_tracestate_duplicated_keys``' discarding); the cases below assert Level 2
and say so. ``test_tracestate_level2.py`` has one test per rule.

Each case plays one hop of the W3C harness through our HTTP helpers: the
inbound headers go through ``extract_trace_context``, a span runs under the
result, and ``inject_trace_context`` writes the outbound headers, which are
then checked as the harness checks a service's callback: the same trace-id
when the inbound ``traceparent`` was valid, a new one otherwise, and the
``tracestate`` carried over only when it was valid too.

The W3C harness names no tenant, so no tenant vouches for its trace: under
the default rule (one trace, one tenant) a service restarts it, linked, which
the specification allows for input it does not trust
(``test_tenant_boundary.py`` covers that side). These cases check the
propagation itself, with traces kept whole (``cross_tenant_traces="keep"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace as trace_api

from tenantrace import TelemetryConfig
from tenantrace.propagation import extract_trace_context, inject_trace_context
from tenantrace.testing import SpanCapture, capture_spans

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
VALID = f"00-{TRACE}-{PARENT}-01"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

Headers = list[tuple[str, str]]


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans(TelemetryConfig(exporter_type="memory", cross_tenant_traces="keep")) as s:
        yield s


@dataclass(frozen=True)
class Outbound:
    trace_id: str
    parent_id: str
    tracestate: dict[str, str]
    tracestate_header: str | None = None  # as written, to see order and duplicates


def _parse_tracestate(value: str | None) -> dict[str, str]:
    members: dict[str, str] = {}
    for raw in (value or "").split(","):
        member = raw.strip(" \t")
        if member:
            key, _, val = member.partition("=")
            members[key] = val
    return members


def hop(spans: SpanCapture, headers: Headers) -> Outbound:
    """One service hop: extract, run a span, inject; return what goes out."""
    ctx = extract_trace_context(headers)
    with spans.manager.span("hop", context=ctx):
        out = inject_trace_context()
    names = [name for name in out if name.lower() == "traceparent"]
    assert names == ["traceparent"], out  # exactly one, lowercase, as the spec asks
    match = _TRACEPARENT.fullmatch(out["traceparent"])
    assert match is not None, out["traceparent"]
    written = out.get("tracestate")
    return Outbound(match[1], match[2], _parse_tracestate(written), written)


def continues(spans: SpanCapture, headers: Headers) -> Outbound:
    out = hop(spans, headers)
    assert out.trace_id == TRACE
    assert out.parent_id != PARENT  # the hop's own span is the new parent
    return out


def restarts(spans: SpanCapture, headers: Headers) -> Outbound:
    out = hop(spans, headers)
    assert out.trace_id != TRACE
    assert out.tracestate == {}  # a failed traceparent: tracestate is not parsed
    return out


# ------------------------------------------------------------------ traceparent


def test_no_headers_start_a_trace(spans: SpanCapture) -> None:
    out = hop(spans, [])
    assert out.trace_id != "0" * 32


def test_valid_traceparent_is_continued(spans: SpanCapture) -> None:
    continues(spans, [("traceparent", VALID)])


@pytest.mark.parametrize("name", ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"])
def test_header_name_in_any_case(spans: SpanCapture, name: str) -> None:
    continues(spans, [(name, VALID)])


@pytest.mark.parametrize("name", ["trace-parent", "trace.parent", "traceparent "])
def test_wrong_header_names_are_not_traceparent(spans: SpanCapture, name: str) -> None:
    restarts(spans, [(name, VALID)])


def test_two_traceparent_headers_restart_the_trace(spans: SpanCapture) -> None:
    restarts(
        spans,
        [
            ("traceparent", f"00-{TRACE[:-1]}1-{PARENT}-01"),
            ("traceparent", VALID),
        ],
    )


def test_two_traceparents_differing_in_case_restart_the_trace(spans: SpanCapture) -> None:
    restarts(spans, [("traceparent", VALID), ("TraceParent", VALID)])


def test_a_combined_traceparent_field_restarts_the_trace(spans: SpanCapture) -> None:
    restarts(spans, [("traceparent", f"{VALID},{VALID}")])


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{PARENT}-01.",  # version 00: nothing may follow the flags
        f"00-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
        f".0-{TRACE}-{PARENT}-01",
        f"0.-{TRACE}-{PARENT}-01",
        f"000-{TRACE}-{PARENT}-01",
        f"0000-{TRACE}-{PARENT}-01",
        f"0-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace-id
        f"00-.{TRACE[1:]}-{PARENT}-01",
        f"00-{TRACE[:-1]}.-{PARENT}-01",
        f"00-{TRACE}3-{PARENT}-01",  # trace-id too long
        f"00-{TRACE[:-1]}-{PARENT}-01",  # trace-id too short
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent-id
        f"00-{TRACE}-.{PARENT[1:]}-01",
        f"00-{TRACE}-{PARENT[:-1]}.-01",
        f"00-{TRACE}-{PARENT}7-01",  # parent-id too long
        f"00-{TRACE}-{PARENT[:-1]}-01",  # parent-id too short
        f"00-{TRACE}-{PARENT}-.0",
        f"00-{TRACE}-{PARENT}-0.",
        f"00-{TRACE}-{PARENT}-001",  # flags too long
        f"00-{TRACE}-{PARENT}-1",  # flags too short
        f"00-{TRACE.upper()[:-1]}A-{PARENT}-01",  # HEXDIGLC: lowercase only
        f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like",  # future: '-' must follow
        f"cc-{TRACE}-{PARENT}",  # future version shorter than 55 characters
        "",
        "garbage",
    ],
)
def test_malformed_traceparent_restarts_the_trace(spans: SpanCapture, value: str) -> None:
    restarts(spans, [("traceparent", value), ("tracestate", "foo=1")])


@pytest.mark.parametrize(
    "value",
    [
        f"cc-{TRACE}-{PARENT}-01",
        f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
    ],
)
def test_future_version_is_parsed_as_version_00(spans: SpanCapture, value: str) -> None:
    out = continues(spans, [("traceparent", value)])
    assert out.trace_id == TRACE  # and written back as version 00 (checked in hop)


@pytest.mark.parametrize(
    "value",
    [f" {VALID}", f"\t{VALID}", f"{VALID} ", f"{VALID}\t", f"\t {VALID} \t"],
)
def test_optional_whitespace_around_traceparent(spans: SpanCapture, value: str) -> None:
    continues(spans, [("traceparent", value)])


@pytest.mark.parametrize(("flags", "sampled"), [("00", False), ("01", True), ("09", True)])
def test_sampled_flag_is_read_with_a_mask(flags: str, sampled: bool) -> None:
    ctx = extract_trace_context([("traceparent", f"00-{TRACE}-{PARENT}-{flags}")])
    remote = trace_api.get_current_span(ctx).get_span_context()
    assert (remote.is_remote, remote.trace_flags.sampled) == (True, sampled)


def test_parent_of_the_hop_span_is_the_remote_parent(spans: SpanCapture) -> None:
    hop(spans, [("traceparent", VALID)])
    [span] = spans.by_name("hop")
    assert (span.trace_id, span.parent_id) == (TRACE, PARENT)


# ------------------------------------------------------------------- tracestate


def test_tracestate_without_traceparent_is_discarded(spans: SpanCapture) -> None:
    assert hop(spans, [("tracestate", "foo=1,bar=2")]).tracestate == {}


def test_tracestate_is_inherited(spans: SpanCapture) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", "foo=1,bar=2")])
    assert out.tracestate == {"foo": "1", "bar": "2"}


@pytest.mark.parametrize("name", ["TraceState", "TrAcEsTaTe", "TRACESTATE"])
def test_tracestate_name_in_any_case(spans: SpanCapture, name: str) -> None:
    assert continues(spans, [("traceparent", VALID), (name, "foo=1")]).tracestate == {"foo": "1"}


@pytest.mark.parametrize("name", ["trace-state", "trace.state"])
def test_wrong_tracestate_names_are_ignored(spans: SpanCapture, name: str) -> None:
    assert continues(spans, [("traceparent", VALID), (name, "foo=1")]).tracestate == {}


@pytest.mark.parametrize(
    "fields",
    [[""], ["foo=1", ""], ["", "foo=1"]],
)
def test_empty_tracestate_fields_are_accepted(spans: SpanCapture, fields: list[str]) -> None:
    headers: Headers = [("traceparent", VALID), *(("tracestate", f) for f in fields)]
    expected = {"foo": "1"} if "foo=1" in fields else {}
    assert continues(spans, headers).tracestate == expected


def test_multiple_tracestate_fields_are_combined_in_order(spans: SpanCapture) -> None:
    out = continues(
        spans,
        [
            ("traceparent", VALID),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ],
    )
    assert list(out.tracestate.items()) == [
        ("foo", "1"),
        ("bar", "2"),
        ("rojo", "1"),
        ("congo", "2"),
        ("baz", "3"),
    ]


@pytest.mark.parametrize(
    "fields",
    [["foo=1,foo=1"], ["foo=1,foo=2"], ["foo=1", "foo=1"], ["foo=1", "foo=2"]],
)
def test_duplicated_keys_keep_the_tracestate(spans: SpanCapture, fields: list[str]) -> None:
    # Level 2 (w3c/trace-context #477, #552; the harness's Tracestate keeps the
    # first and drops the rest): duplicates may be kept as-is or one dropped, the
    # header is not discarded. We keep the left-most, the most recent position.
    headers: Headers = [("traceparent", VALID), *(("tracestate", f) for f in fields)]
    out = continues(spans, headers)
    assert out.tracestate_header == "foo=1"


def test_a_duplicated_key_among_others_keeps_their_order(spans: SpanCapture) -> None:
    headers: Headers = [
        ("traceparent", VALID),
        ("tracestate", "a=1,foo=2,b=3"),
        ("tracestate", "foo=4,c=5"),
    ]
    assert continues(spans, headers).tracestate_header == "a=1,foo=2,b=3,c=5"


def test_all_allowed_characters(spans: SpanCapture) -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    vendor_key = key + "@a-z0-9_-*/"
    value = "".join(chr(c) for c in [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)])
    for name in (key, vendor_key):
        out = continues(spans, [("traceparent", VALID), ("tracestate", f"{name}={value}")])
        assert out.tracestate == {name: value}


@pytest.mark.parametrize(
    "value",
    ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
)
def test_optional_whitespace_in_tracestate(spans: SpanCapture, value: str) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", value)])
    assert out.tracestate == {"foo": "1", "bar": "2", "baz": "3"}


@pytest.mark.parametrize("value", [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"])
def test_whitespace_around_one_member(spans: SpanCapture, value: str) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", value)])
    assert out.tracestate == {"foo": "1"}


@pytest.mark.parametrize("value", ["foo =1", "FOO=1", "foo.bar=1"])
def test_illegal_key_discards_the_tracestate(spans: SpanCapture, value: str) -> None:
    assert continues(spans, [("traceparent", VALID), ("tracestate", value)]).tracestate == {}


@pytest.mark.parametrize("value", ["foo@=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2"])
def test_at_signs_after_the_first_character_are_legal(spans: SpanCapture, value: str) -> None:
    # Level 2 key grammar: keychar includes "@", with no tenant@system structure
    # (the harness still rejects these, from Level 1).
    out = continues(spans, [("traceparent", VALID), ("tracestate", value)])
    assert out.tracestate_header == value


@pytest.mark.parametrize("value", ["@foo=1,bar=2", "@=1,bar=2", "=1,bar=2"])
def test_a_key_not_starting_with_a_letter_or_digit_discards_it(
    spans: SpanCapture, value: str
) -> None:
    assert continues(spans, [("traceparent", VALID), ("tracestate", value)]).tracestate == {}


@pytest.mark.parametrize("key", ["1abc", "0", "9@x", "a/b*c_d-e"])
def test_level_2_keys_that_level_1_refused(spans: SpanCapture, key: str) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", f"{key}=1,bar=2")])
    assert out.tracestate == {key: "1", "bar": "2"}


@pytest.mark.parametrize(
    "value",
    ["foo=bar=baz", "foo=,bar=3", "foo=  ,bar=3", "foo=a\tb", "foo=caf\u00e9", "foo", "bar=2,foo"],
)
def test_illegal_value_discards_the_tracestate(spans: SpanCapture, value: str) -> None:
    assert continues(spans, [("traceparent", VALID), ("tracestate", value)]).tracestate == {}


def _members(start: int, stop: int) -> str:
    return ",".join(f"bar{i:02d}={i:02d}" for i in range(start, stop))


def test_32_members_are_kept(spans: SpanCapture) -> None:
    headers: Headers = [
        ("traceparent", VALID),
        ("tracestate", _members(1, 11)),
        ("tracestate", _members(11, 21)),
        ("tracestate", _members(21, 31)),
        ("tracestate", _members(31, 33)),
    ]
    out = continues(spans, headers)
    assert len(out.tracestate) == 32
    assert out.tracestate["bar01"] == "01"


def test_33_members_discard_the_tracestate_but_not_the_traceparent(spans: SpanCapture) -> None:
    headers: Headers = [
        ("traceparent", VALID),
        ("tracestate", _members(1, 11)),
        ("tracestate", _members(11, 21)),
        ("tracestate", _members(21, 31)),
        ("tracestate", _members(31, 34)),
    ]
    assert continues(spans, headers).tracestate == {}
    assert spans.manager.get_stats()["propagation.tracestate_dropped"] == 1


@pytest.mark.parametrize(
    ("member", "kept"),
    [
        ("z" * 256 + "=1", True),
        ("z" * 257 + "=1", False),
        ("t" * 241 + "@" + "v" * 14 + "=1", True),
        # Level 2: only the key's total length counts (Level 1 limited the
        # tenant to 241 and the system to 14 characters: the harness still does).
        ("t" * 242 + "@v=1", True),
        ("t@" + "v" * 15 + "=1", True),
        ("t" * 100 + "@" + "v" * 155 + "=1", True),  # 256 in all
        ("t" * 100 + "@" + "v" * 156 + "=1", False),  # 257
        ("t@" + "v" * 254 + "=1", True),
        ("t@" + "v" * 255 + "=1", False),
    ],
)
def test_key_length_limits(spans: SpanCapture, member: str, kept: bool) -> None:
    out = continues(
        spans, [("traceparent", VALID), ("tracestate", "foo=1"), ("tracestate", member)]
    )
    assert ("foo" in out.tracestate) is kept
    key = member.partition("=")[0]
    assert out.tracestate_header == (f"foo=1,{key}=1" if kept else None)


@pytest.mark.parametrize(("length", "kept"), [(256, True), (257, False)])
def test_value_length_limit(spans: SpanCapture, length: int, kept: bool) -> None:
    value = "v" * length
    out = continues(spans, [("traceparent", VALID), ("tracestate", f"foo={value},bar=1")])
    assert out.tracestate == ({"foo": value, "bar": "1"} if kept else {})


def test_leading_spaces_of_a_value_are_kept(spans: SpanCapture) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", "foo=  1 ,bar=2")])
    assert out.tracestate_header == "foo=  1,bar=2"


def test_an_invalid_tracestate_is_counted_and_the_traceparent_kept(spans: SpanCapture) -> None:
    out = continues(spans, [("traceparent", VALID), ("tracestate", "foo=1,BAD=2")])
    assert out.tracestate_header is None
    assert spans.manager.get_stats()["propagation.tracestate_dropped"] == 1


def test_tracestate_is_not_parsed_without_a_valid_traceparent(spans: SpanCapture) -> None:
    restarts(spans, [("traceparent", "garbage"), ("tracestate", "foo=1,BAD=2")])
    assert "propagation.tracestate_dropped" not in spans.manager.get_stats()


def test_tracestate_is_written_back_unchanged(spans: SpanCapture) -> None:
    header = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,1tenant@vendor=x y,a@b@c= lead"
    out = continues(spans, [("traceparent", VALID), ("tracestate", header)])
    assert out.tracestate_header == header


# ----------------------------------------------------------------- many requests


def test_each_outgoing_request_gets_its_own_parent_id(spans: SpanCapture) -> None:
    ctx = extract_trace_context({"traceparent": VALID})
    parents = set()
    for _ in range(3):
        with spans.manager.span("call", context=ctx):
            out = inject_trace_context()
        match = _TRACEPARENT.fullmatch(out["traceparent"])
        assert match is not None and match[1] == TRACE
        parents.add(match[2])
    assert len(parents) == 3


def test_an_illegal_traceparent_never_leaks_its_all_zero_trace_id(spans: SpanCapture) -> None:
    out = hop(spans, [("traceparent", f"00-{'0' * 32}-{PARENT}-01")])
    assert out.trace_id != "0" * 32
    assert spans.manager.get_stats()["propagation.invalid_traceparent"] == 1
