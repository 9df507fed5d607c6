"""The training benchmark (helpers.bench, `make bench`) on one step a window: it runs and reports; nothing is timed."""
import json

from helpers.bench import SETUPS, answer_loss, as_rows, summarise, table, windows
from tests.conftest import run_module


def test_the_bench_measures_the_course_recipe_and_a_lever_in_separate_processes(tmp_path, base):
    out = tmp_path / "bench.json"
    # TRL's defaults are left out of this run: they train in bfloat16, which a CPU without bfloat16 instructions
    # emulates at over five minutes a step; the next test checks how that setup is built.
    done = run_module("helpers.bench", "--steps", "1", "--repeats", "2", "--warmup", "0", "--threads", "1",
                      "--only", "course,no-compact-logits", "--val-rows", "4", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] >= 1 and "trl" in report["versions"]
    course, lever = report["runs"]["course"], report["runs"]["no-compact-logits"]
    for run in (course, lever):
        assert run["steps"] == 2 and len(run["windows"]) == 2 and run["torch_threads"] == 1
        assert run["examples_per_s"]["min"] <= run["examples_per_s"]["median"] <= run["examples_per_s"]["max"]
        assert run["tokens_per_s"]["median"] > 0 and run["peak_rss_mb"] > 0 and 0 <= run["val_exact_match"] <= 1
    assert course["learning_rate"] == 1e-3 and course["trainable_params"] == lever["trainable_params"]
    assert report["summary"]["levers"]["compact logits"] > 0
    assert "compact logits" in done.stdout


def test_trls_defaults_are_trls_own_settings_on_the_course_adapter(tmp_path, base):
    from helpers.bench import make_setup_trainer

    trl, _, trl_params = make_setup_trainer(SETUPS["trl-defaults"], 1, tmp_path / "trl")
    course, _, course_params = make_setup_trainer(SETUPS["course"], 1, tmp_path / "course")
    # TRL's rate and gradient checkpointing; the same adapter as the course's, so only the settings differ
    assert trl.args.learning_rate == 2e-5 and trl.args.gradient_checkpointing
    assert course.args.learning_rate == 1e-3 and not course.args.gradient_checkpointing
    assert trl_params.trainable == course_params.trainable


def test_rows_take_each_setups_format():
    row = {"prompt": [{"role": "system", "content": ""}, {"role": "user", "content": "my back aches"}],
           "completion": [{"role": "assistant", "content": "DIAGNOSIS_CODE: M54.50"}]}
    assert as_rows([row], SETUPS["course"]) == [{"prompt": row["prompt"], "completion": row["completion"]}]
    assert as_rows([row], SETUPS["default-system-prompt"])[0]["prompt"] == row["prompt"][1:]
    assert as_rows([row], SETUPS["trl-defaults"]) == [{"messages": [row["prompt"][1], *row["completion"]]}]
    assert as_rows([row], SETUPS["messages-format"]) == [{"messages": [*row["prompt"], *row["completion"]]}]


def test_windows_and_the_summary_are_computed_from_the_step_times():
    found = windows([9.0, 1.0, 1.0, 2.0, 2.0], [0, 50, 50, 60, 60], warmup=1, steps=2, repeats=2)
    assert found == [{"examples_per_s": 8.0, "tokens_per_s": 50.0, "seconds": 2.0},
                     {"examples_per_s": 4.0, "tokens_per_s": 30.0, "seconds": 4.0}]
    runs = {name: {"label": name, "examples_per_s": {"median": rate, "min": rate, "max": rate},
                   "tokens_per_s": {"median": 1.0, "min": 1.0, "max": 1.0}, "val_exact_match": em,
                   "peak_rss_mb": rss, "peak_rss_training_mb": rss}
            for name, rate, em, rss in [("course", 6.0, 0.5, 1000), ("trl-defaults", 2.0, 0.0, 1500),
                                        ("no-compact-logits", 3.0, 0.5, 1200), ("no-bf16-autocast", 4.0, 0.5, 1000),
                                        ("qlora-fp32", 3.0, 0.5, 700)]}
    summary = summarise(runs)
    assert summary["speedup_vs_trl_defaults"] == 3.0 and summary["targets"]["speedup_at_least_3x"]
    assert summary["levers"] == {"compact logits": 2.0, "bf16 autocast": 1.5}
    assert summary["qlora_vs_lora_fp32_peak_rss"] == 0.7
    assert not summary["targets"]["qlora_peak_rss_at_most_0.6x_lora_fp32"]
    assert "3.0x examples/s" in table({"runs": runs, "summary": summary})


def test_the_answer_loss_is_lowest_for_the_answer_the_model_itself_writes(base):
    from helpers.chat import prompt_messages
    from helpers.evaluation import generate_answers

    model, tokenizer = base
    model.eval()
    row = {"instruction": "My lower back has been aching since yesterday.", "response": "DIAGNOSIS_CODE: M54.50"}
    own = generate_answers(model, tokenizer, [row["instruction"]], 1, max_new_tokens=24, progress=False)[0]
    reference = answer_loss(model, tokenizer, [row], prompt_messages)
    written = answer_loss(model, tokenizer, [{**row, "response": own}], prompt_messages)
    assert 0 < written < reference  # greedy decoding picks likely tokens; the code is news to the base model
