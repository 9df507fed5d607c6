"""The training-step benchmark (helpers.speed): it times real steps and says what machine it ran on."""
from helpers.speed import bf16_speedup, machine, time_steps


def test_the_machine_description_carries_a_measured_matmul_rate():
    described = machine()
    assert described["cores"] >= 1 and described["torch_threads"] >= 1
    assert described["fp32_matmul_gflops"] > 0 and described["bf16_matmul_gflops"] > 0


def test_the_bf16_speedup_is_the_ratio_of_the_measured_rates_and_is_measured_once(monkeypatch):
    import helpers.speed

    bf16_speedup.cache_clear()
    calls = []
    monkeypatch.setattr(helpers.speed, "matmul_gflops", lambda dtype="float32", repeats=50, seconds=1.0:
                        calls.append(dtype) or {"bfloat16": 900.0, "float32": 200.0}[dtype])
    assert bf16_speedup() == 4.5 and bf16_speedup() == 4.5
    assert sorted(calls) == ["bfloat16", "float32"]
    bf16_speedup.cache_clear()


def test_both_projections_time_every_step_and_log_its_loss():
    for compact in (False, True):
        run = time_steps("ci", 2, compact=compact)
        assert run["compact"] is compact
        assert len(run["seconds_per_step"]) == 2 and all(s > 0 for s in run["seconds_per_step"])
        assert len(run["losses"]) == 2
