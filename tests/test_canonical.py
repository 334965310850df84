import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from bubblechain.crypto import canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_dumps_is_rfc8785(value):
    assert canonical.dumps(value) == rfc8785.dumps(value)


@given(json_values)
def test_loads_round_trips(value):
    assert canonical.dumps(canonical.loads(canonical.dumps(value))) == canonical.dumps(value)


@pytest.mark.parametrize(
    "text",
    [
        b'{"b":1,"a":2}',  # keys out of order
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',  # JCS writes 1
        b'{"a":"\\u0041"}',  # needless escape
        b"[1e2]",
    ],
)
def test_loads_rejects_non_canonical(text):
    json.loads(text)  # valid JSON ...
    with pytest.raises(ValueError, match="canonical"):
        canonical.loads(text)  # ... but not the canonical encoding


@pytest.mark.parametrize(
    "payload, why",
    [
        (b'{"a":"\\ud800"}', "lone UTF-16 surrogate"),  # escaped: valid JSON, not encodable
        (b'{"a":"\xed\xa0\x80"}', "not valid JSON"),  # a surrogate's bytes: not UTF-8
        ('{"a":1}'.encode("utf-16"), "not valid JSON"),  # canonical JSON is UTF-8 only
    ],
)
def test_loads_says_why_text_is_refused(payload, why):
    with pytest.raises(ValueError, match=why) as e:
        canonical.loads(payload)
    assert type(e.value) is ValueError  # not a codec error naming no JSON at all


def test_unsafe_integer_is_refused():
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical.dumps({"t": 2**60})


@settings(max_examples=3000)
@given(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-5, max_value=1e-3)
    | st.floats(min_value=1e15, max_value=1e17)
    | st.sampled_from([1e-4, -1e-4, 0.1, 1 / 3, 2.5, 1e16 - 0.5, 9007199254740993.0, 5e-324])
)
def test_float_fast_path_matches_rfc8785(x):
    # Floats in plain decimal notation take the json fast path: it must agree with JCS.
    assert canonical.dumps({"x": x, "l": [x, -x]}) == rfc8785.dumps({"x": x, "l": [x, -x]})
