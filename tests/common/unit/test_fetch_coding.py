"""`kafka_seams.fetches_coded_directly`: a fetch request written directly is the bytes aiokafka's own encoder writes,
an answer read directly is the value aiokafka's own decoder builds from the same bytes, for any request and answer
(nulls, aborted transactions, records, errors), and a truncated answer is refused as aiokafka refuses it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest_v11, FetchResponse_v11
from aiokafka.protocol.struct import Struct
from hypothesis import given
from hypothesis import strategies as st

from parley_common.kafka_seams import (
    _decode_fetch_answer,
    _encode_fetch_request,
    fetches_coded_directly,
    reuse_unchanged_fetches,
)

INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
ABORTED = st.none() | st.lists(st.tuples(INT64, INT64), max_size=3)
PARTITION = st.tuples(INT32, INT16, INT64, INT64, INT64, ABORTED, INT32, st.none() | st.binary(max_size=64))
TOPIC = st.tuples(st.none() | st.text(max_size=20), st.none() | st.lists(PARTITION, max_size=5))
ANSWER = st.tuples(INT32, INT16, INT32, st.none() | st.lists(TOPIC, max_size=4))
NAME = st.none() | st.text(max_size=20)
ASKED = st.tuples(INT32, INT32, INT64, INT64, INT32)
REQUEST = st.tuples(INT32, INT32, INT32, INT32, st.integers(-128, 127), INT32, INT32,
                    st.none() | st.lists(st.tuples(NAME, st.none() | st.lists(ASKED, max_size=5)), max_size=4),
                    st.none() | st.lists(st.tuples(NAME, st.none() | st.lists(INT32, max_size=3)), max_size=2), NAME)


@given(REQUEST)
def test_a_request_written_directly_is_what_aiokafka_encodes(fields: tuple[Any, ...]) -> None:
    request = FetchRequest_v11(*fields)
    assert _encode_fetch_request(request) == FetchRequest_v11.SCHEMA.encode(list(fields))


def aiokafkas_own(data: bytes) -> Any:
    return Struct.decode.__func__(FetchResponse_v11, io.BytesIO(data))  # type: ignore[attr-defined]


@given(ANSWER)
def test_an_answer_read_directly_is_what_aiokafka_decodes(fields: tuple[Any, ...]) -> None:
    data = FetchResponse_v11(*fields).encode()

    direct, own = _decode_fetch_answer(FetchResponse_v11, io.BytesIO(data)), aiokafkas_own(data)

    assert isinstance(direct, FetchResponse_v11)
    assert direct == own
    assert direct.topics == own.topics  # the same types too: lists, tuples, bytes, None
    assert _decode_fetch_answer(FetchResponse_v11, data) == direct  # as bytes too (the reuse seam passes bytes)


@given(ANSWER, st.data())
def test_a_truncated_answer_is_refused_as_aiokafka_refuses_it(fields: tuple[Any, ...], data: st.DataObject) -> None:
    whole = FetchResponse_v11(*fields).encode()
    cut = whole[:data.draw(st.integers(0, len(whole) - 1))]
    with pytest.raises(ValueError):
        aiokafkas_own(cut)
    with pytest.raises(ValueError):
        _decode_fetch_answer(FetchResponse_v11, io.BytesIO(cut))


def test_the_reuse_of_unchanged_answers_wraps_the_direct_decoder_whatever_is_applied_first() -> None:
    reuse_unchanged_fetches()
    fetches_coded_directly()  # again, after `reuse_unchanged_fetches` wrapped the decoder: nothing changes
    data = FetchResponse_v11(0, 0, 0, [("t", [(0, 0, 5, 5, 0, None, -1, b"")])]).encode()
    assert FetchResponse_v11.decode(io.BytesIO(data)) == aiokafkas_own(data)
    assert FetchResponse_v11.decode.__wrapped__ is _decode_fetch_answer  # type: ignore[attr-defined]
    assert FetchRequest_v11.encode is _encode_fetch_request
