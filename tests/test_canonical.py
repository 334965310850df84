import json

import pytest
import rfc8785
from hypothesis import given
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


def test_unsafe_integer_is_refused():
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical.dumps({"t": 2**60})
