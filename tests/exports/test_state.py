"""The state an incremental export compares against, without a database."""

from __future__ import annotations

import uuid

from app.exports.snapshot import State, StateBuilder, retracted

# Ids whose last bytes are NUL: numpy's "S" strings would drop them (a 1-in-256 chance per random UUID).
IDS = sorted(
    [uuid.UUID(bytes=b"\x01" * 15 + b"\x00"), uuid.UUID(int=2 << 64), uuid.UUID(int=7), uuid.UUID(int=9)]
)


def build(pairs: list[tuple[uuid.UUID, int]]) -> State:
    builder = StateBuilder()
    for pair_id, digest in sorted(pairs):
        builder.add(pair_id.bytes, digest)
    return builder.build()


def test_round_trip_keeps_every_byte() -> None:
    state = build([(i, n) for n, i in enumerate(IDS)])
    again = State.from_bytes(state.to_bytes())
    find = again.walker()
    assert [find(i.bytes) for i in IDS] == [0, 1, 2, 3]


def test_walker_answers_ids_asked_in_order_and_misses() -> None:
    find = build([(IDS[0], 10), (IDS[2], 30)]).walker()
    assert [find(i.bytes) for i in IDS] == [10, None, 30, None]


def test_retracted_are_the_rows_that_are_no_more() -> None:
    before = build([(i, 1) for i in IDS])
    after = build([(IDS[1], 5), (IDS[3], 1)])
    assert retracted(before, after) == sorted(str(i) for i in (IDS[0], IDS[2]))
