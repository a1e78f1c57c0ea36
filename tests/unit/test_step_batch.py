"""StepBatcher: the first step of a reply goes at once, later ones in time-boxed batches, and
nothing pending is ever lost (flush before Done); the host hands a batch on as single Steps."""

from __future__ import annotations

from typing import Any

from desktop.core.steps import StepRecord
from desktop.engine import protocol as P
from desktop.engine.step_batch import StepBatcher


def step(n: int) -> StepRecord:
    return StepRecord(step=n, token_id=n, text=f"t{n}", piece=f"t{n}", prob=0.5, raw_prob=0.5,
                      raw_rank=1, entropy_raw=1.0, entropy_final=1.0, stages=())


def test_first_step_at_once_then_batches_then_the_rest_on_flush() -> None:
    sent: list[Any] = []
    batch = StepBatcher(sent.append, request_id=7, interval_s=3600)
    batch.add(step(0))
    assert sent == [P.Step(7, step(0))]  # time to first token is not delayed
    for n in (1, 2, 3):
        batch.add(step(n))
    assert len(sent) == 1  # within the interval: held
    batch.flush()
    assert sent[1] == P.Steps(7, (step(1), step(2), step(3)))
    batch.flush()
    assert len(sent) == 2  # nothing pending, nothing sent


def test_a_slow_model_sends_every_step_as_it_comes() -> None:
    sent: list[Any] = []
    batch = StepBatcher(sent.append, request_id=1, interval_s=0.0)
    for n in range(3):
        batch.add(step(n))
    assert sent == [P.Step(1, step(n)) for n in range(3)]


def test_the_host_hands_a_batch_on_as_single_steps() -> None:
    from desktop.engine.host import EngineHost

    seen: list[Any] = []
    host = EngineHost.__new__(EngineHost)  # only the dispatch path: no process is started
    host.on_event = seen.append

    class Pipe:
        def __init__(self) -> None:
            self.events: list[Any] = [P.Steps(3, (step(1), step(2))), P.Step(3, step(3))]

        def recv(self) -> Any:
            if not self.events:
                raise EOFError
            return self.events.pop(0)

    host._stopping = True  # the pipe's end is a normal stop here, not a crash
    host._read_loop(Pipe(), None)
    assert seen == [P.Step(3, step(1)), P.Step(3, step(2)), P.Step(3, step(3))]
