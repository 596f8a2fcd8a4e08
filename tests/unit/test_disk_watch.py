"""When a running command's writable layer is measured (harness.agent.disk), on a simulated clock."""

from __future__ import annotations

import pytest

from harness.agent.disk import FIRST_S, MAX_S, MIN_S, REGULAR_S, DiskWatch

pytestmark = pytest.mark.unit

MB = 1 << 20


class Layer:
    """A layer written at `rate` bytes/s from `start` bytes; each measurement takes `cost` seconds."""

    def __init__(self, rate: float, cost: float, start: int = 0) -> None:
        self.now, self.rate, self.cost, self.start, self.count = 0.0, rate, cost, start, 0

    def clock(self) -> float:
        return self.now

    def size(self) -> int:
        return int(self.start + self.rate * self.now)

    def measure(self) -> int:
        self.now += self.cost
        self.count += 1
        return self.size()


def run(layer: Layer, limit: int, until: float = 60.0, since: float = 0.0) -> tuple[DiskWatch, list[float]]:
    """The command's watch loop: wait, measure, stop past the limit (or at `until`)."""
    watch = DiskWatch(limit, layer.measure, layer.size(), since, clock=layer.clock)
    waits = []
    while layer.now < until:
        waits.append(watch.wait())
        layer.now += waits[-1]
        watch.measure()
        if watch.over():
            break
    return watch, waits


@pytest.mark.parametrize("cost", [0.002, 0.01, 0.04])
def test_a_burst_is_seen_within_a_measurement_of_the_limit(cost):
    """400 MB/s of small files against 64 MB: a fixed 0.2 s poll first looked at 80 MB."""
    layer = Layer(400 * MB, cost)
    watch, _ = run(layer, 64 * MB)
    assert watch.over()
    overshoot = watch.size - 64 * MB
    print(f"cost {cost * 1000:.0f} ms: seen at {watch.size / MB:.1f} MB after {layer.count} measurements")
    # what it writes while the last wait (at least MIN_S, or one measurement) and measurement last
    assert overshoot <= 400 * MB * (max(MIN_S, cost) + cost) + 1


def test_the_first_measurement_comes_early_then_the_interval_doubles_to_the_regular_one():
    layer = Layer(0, 0.002, start=10 * MB)
    watch, waits = run(layer, 64 * MB, until=2.0)
    assert not watch.over()
    assert waits[:3] == [FIRST_S, 2 * FIRST_S, REGULAR_S]
    assert all(w == REGULAR_S for w in waits[2:])


def test_a_costly_measurement_of_a_still_layer_is_taken_at_most_every_ten_times_its_cost():
    """50,000 files cost the engine ~240 ms a walk: not measured back to back while nothing grows."""
    layer = Layer(0, 0.24, start=500 * MB)
    watch, waits = run(layer, 4096 * MB, until=60.0)
    assert not watch.over()
    assert waits[0] == FIRST_S and min(waits[1:]) >= 0.24 - 1e-6  # then as often as one takes, at most
    ramp = [i for i, w in enumerate(waits) if w < 2.4 - 1e-6]
    print(f"waits: {[round(w, 2) for w in waits[:8]]}...")
    assert len(ramp) <= 7 and ramp == list(range(len(ramp)))  # the early ones, then every 2.4 s
    assert layer.count <= len(ramp) + 60 / 2.4 + 1


def test_slow_growth_far_from_the_limit_is_measured_at_the_regular_interval():
    """A pip install writing 20 MB/s, 4 GB below its limit, is not watched more closely for it."""
    layer = Layer(20 * MB, 0.002, start=100 * MB)
    _, waits = run(layer, 4096 * MB, until=10.0)
    assert all(w == REGULAR_S for w in waits[2:])


def test_near_the_limit_measurements_come_sooner_but_no_faster_than_they_take():
    layer = Layer(100 * MB, 0.05)
    watch, waits = run(layer, 64 * MB)
    print(f"waits: {[round(w, 3) for w in waits]}, seen at {watch.size / MB:.1f} MB")
    assert watch.over()
    assert min(waits[1:]) >= 0.05 - 1e-6
    # past the first ones, the regular interval would be 10 x 0.05 s: it came sooner as the limit neared
    assert any(w < REGULAR_S for w in waits[2:])


def test_growth_before_the_command_counts_over_the_time_it_took():
    """10 MB written in the 30 s of the model's turn is not a burst in the command's first 0.05 s."""
    layer = Layer(0, 0.002, start=50 * MB)
    watch = DiskWatch(64 * MB, layer.measure, 40 * MB, since=-30.0, clock=layer.clock)
    layer.now = watch.wait()
    watch.measure()
    assert watch.rate < 1 * MB
    assert watch.wait() == 2 * FIRST_S  # the ramp, not a closer look


def test_a_slow_measurement_delays_the_next_by_at_most_the_longest_interval():
    layer = Layer(1 * MB, 30.0)
    _, waits = run(layer, 4096 * MB, until=200.0)
    assert max(waits) == MAX_S
