"""`flush.Decoded`: objects of earlier flushes, taken only for the very bytes in the store."""

from __future__ import annotations

from leadstream.agents.flush import Decoded


class _Counting:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, raw: bytes) -> str:
        self.calls.append(raw)
        return raw.decode()


def test_the_same_bytes_are_decoded_once_other_bytes_again() -> None:
    decode = _Counting()
    cache: Decoded[str] = Decoded(decode, 10)
    raw = b'{"v": 1}'
    assert cache.get(b"k", raw) == raw.decode()
    assert cache.get(b"k", raw) == raw.decode()
    assert cache.get(b"k", bytes(bytearray(raw))) == raw.decode()  # equal, not the same object
    assert decode.calls == [raw] and cache.hits == 2
    assert cache.get(b"k", b'{"v": 2}') == '{"v": 2}'  # the store moved on: decoded
    assert cache.get(b"other", raw) == raw.decode()  # another key: its own entry
    assert len(decode.calls) == 3


def test_a_written_value_is_taken_when_the_store_holds_its_bytes() -> None:
    decode = _Counting()
    cache: Decoded[str] = Decoded(decode, 10)
    cache.put(b"k", b"written", "the object written")
    assert cache.get(b"k", b"written") == "the object written"
    # the flush never became durable: the store still holds what was there before
    assert cache.get(b"k", b"before") == "before"
    assert decode.calls == [b"before"]


def test_bounded_the_least_recently_stored_key_goes_first() -> None:
    decode = _Counting()
    cache: Decoded[str] = Decoded(decode, 2)
    cache.put(b"a", b"1", "a1")
    cache.put(b"b", b"1", "b1")
    cache.put(b"a", b"2", "a2")  # stored again: now the newest
    cache.put(b"c", b"1", "c1")  # over the bound: b goes
    assert list(cache.entries) == [b"a", b"c"]
    assert cache.get(b"b", b"1") == "1" and decode.calls == [b"1"]


def test_size_zero_keeps_nothing() -> None:
    decode = _Counting()
    cache: Decoded[str] = Decoded(decode, 0)
    cache.put(b"k", b"x", "kept?")
    assert cache.get(b"k", b"x") == "x" and cache.get(b"k", b"x") == "x"
    assert cache.entries == {} and cache.hits == 0 and len(decode.calls) == 2
