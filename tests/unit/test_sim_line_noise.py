"""LineNoise: measured bit-error, burst-loss and outage rates match their settings (seeded)."""

from __future__ import annotations

import pytest

from watershed_sim.line_noise import LineNoise, NoiseSettings, Outage

N_BYTES = 200_000


def run(noise: LineNoise, n: int = N_BYTES) -> list[int | None]:
    return [noise.pass_byte(0x55) for _ in range(n)]


@pytest.mark.parametrize("ber", [1e-3, 1e-4])
def test_measured_bit_error_rate_matches_the_setting(ber: float) -> None:
    noise = LineNoise(NoiseSettings(ber=ber), seed=1)
    received = run(noise)
    flipped = sum(bin(v ^ 0x55).count("1") for v in received if v is not None)
    measured = flipped / (8 * N_BYTES)
    assert measured == pytest.approx(ber, rel=0.1)
    assert noise.counts["bits_flipped"] == flipped


def test_bit_errors_are_spread_over_all_eight_bits() -> None:
    noise = LineNoise(NoiseSettings(ber=1e-2), seed=2)
    per_bit = [0] * 8
    for v in run(noise, 50_000):
        assert v is not None
        for bit in range(8):
            per_bit[bit] += (v ^ 0x55) >> bit & 1
    assert min(per_bit) > 0.8 * max(per_bit)


@pytest.mark.parametrize("loss,mean_burst", [(0.05, 20.0), (0.2, 5.0)])
def test_burst_loss_rate_and_burst_length_match_the_settings(loss: float, mean_burst: float) -> None:
    noise = LineNoise(NoiseSettings(burst_loss=loss, mean_burst_bytes=mean_burst), seed=3)
    received = run(noise)
    lost = [v is None for v in received]
    bursts = sum(1 for i, x in enumerate(lost) if x and (i == 0 or not lost[i - 1]))
    assert sum(lost) / N_BYTES == pytest.approx(loss, rel=0.15)
    assert sum(lost) / bursts == pytest.approx(mean_burst, rel=0.15)
    assert noise.counts["lost_burst"] == sum(lost)


def test_everything_sent_during_an_outage_is_lost_and_nothing_outside_it() -> None:
    now = [0.0]
    noise = LineNoise(NoiseSettings(outages=(Outage(100.0, 86_500.0),)), clock=lambda: now[0])
    for t in (0.0, 99.9, 100.0, 50_000.0, 86_499.9, 86_500.0, 200_000.0):
        now[0] = t
        got = noise.pass_byte(0x42)
        assert (got is None) == (100.0 <= t < 86_500.0), t
    assert noise.counts["lost_outage"] == 3


def test_a_clean_line_passes_bytes_unchanged() -> None:
    data = bytes(range(256)) * 4
    assert LineNoise(NoiseSettings()).pass_bytes(data) == data


def test_same_seed_same_errors() -> None:
    settings = NoiseSettings(ber=1e-3, burst_loss=0.01)
    assert run(LineNoise(settings, seed=9), 20_000) == run(LineNoise(settings, seed=9), 20_000)


@pytest.mark.parametrize("bad", [dict(ber=1.0), dict(burst_loss=-0.1), dict(mean_burst_bytes=0.5)])
def test_impossible_settings_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        NoiseSettings(**bad)
