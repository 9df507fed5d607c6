"""The per-epoch callback of chapter 4: val exact match, the general score, early stopping."""
import json

import pytest

from helpers.chat import prompt_completion
from helpers.config import get_profile
from helpers.lora import lora_config
from helpers.models import load_model
from helpers.paths import DATA
from helpers.training import EpochEval, loss_history, make_trainer


def seed_rows():
    return [{**r, **prompt_completion(r)} for r in json.loads((DATA / "examples" / "seed_format.json").read_text())]


def tiny_trainer(tmp_path, callbacks, patience, epochs=4, val=None, loaded=None):
    model, tokenizer = loaded or load_model()  # a fresh copy: LoRA is injected into it
    rows = seed_rows()
    val = val or rows[:2]
    trainer = make_trainer(
        model, tokenizer, get_profile("ci"), rows, val, output_dir=tmp_path,
        peft_config=lora_config(r=4, alpha=8, top_layers=2, num_layers=model.config.num_hidden_layers),
        callbacks=callbacks(tokenizer, val), patience=patience,
        num_train_epochs=epochs, per_device_train_batch_size=4, warmup_steps=0, learning_rate=0.0,
        disable_tqdm=True, max_length=256,
    )
    return trainer


def test_every_epoch_records_val_exact_match_and_the_general_score_from_the_base_on(tmp_path):
    watch = {}

    def callbacks(tokenizer, val):
        watch["cb"] = EpochEval(tokenizer, val, batch_size=2, probe_limit=4)
        return [watch["cb"]]

    trainer = tiny_trainer(tmp_path, callbacks, patience=None, epochs=2)
    trainer.train()
    history = watch["cb"].history
    assert [p["step"] for p in history] == [0, 2, 4]
    assert "val_exact_match" not in history[0] and 0.0 <= history[0]["general_acc"] <= 1.0
    assert all(0.0 <= p["val_exact_match"] <= 1.0 and "general_acc" in p for p in history[1:])
    # With a learning rate of zero the weights never move, so the general score cannot either.
    assert {p["general_acc"] for p in history} == {history[0]["general_acc"]}
    # The callback's points do not disturb the loss curves.
    train_curve, val_curve = loss_history(trainer)
    assert len(train_curve) == 4 and len(val_curve) == 2


def test_val_exact_match_read_off_the_loss_pass_counts_what_greedy_decoding_writes(tmp_path):
    from helpers.chat import prompt_completion
    from helpers.evaluation import generate_answers

    model, tokenizer = load_model()
    rows = seed_rows()
    # The base model's own greedy answer to a row, made the reference: greedy decoding writes it, so it must count as
    # matched. It has to be an answer that ends its turn; asked without a task prompt, the base model rambles on past
    # 128 tokens for most rows. The first row keeps its real answer, which the base model does not write.
    model.eval()
    for row in rows[1:]:
        own = generate_answers(model, tokenizer, [row["instruction"]], 1, max_new_tokens=128, progress=False)[0]
        ended = len(tokenizer(own)["input_ids"]) < 100
        if ended:
            break
    assert ended and "DIAGNOSIS_CODE" not in own
    val = [rows[0], {**row, **prompt_completion({**row, "response": own})}]
    watch = {}

    def callbacks(tokenizer, val_rows):
        watch["cb"] = EpochEval(tokenizer, val_rows, batch_size=2, probe=False)
        return [watch["cb"]]

    import helpers.evaluation

    generated = []
    real = helpers.evaluation.evaluate_rows
    helpers.evaluation.evaluate_rows = lambda *a, **k: generated.append(1) or real(*a, **k)
    try:
        trainer = tiny_trainer(tmp_path, callbacks, patience=None, epochs=2, val=val, loaded=(model, tokenizer))
        trainer.train()
    finally:
        helpers.evaluation.evaluate_rows = real
    # Generation-scored exact match compares codes and would give 0 here: 0.5 after each epoch shows the loss pass
    # was read, that the count starts afresh every epoch, and that training steps (also forward passes through the
    # hook) were not counted.
    assert [p["val_exact_match"] for p in watch["cb"].history] == [0.5, 0.5]
    assert not generated
    assert watch["cb"].match.handle is None  # the hook is gone after training


def test_early_stopping_ends_when_val_exact_match_stops_improving(tmp_path):
    # Learning rate zero: exact match never improves, so patience 1 stops after the second epoch of four.
    trainer = tiny_trainer(tmp_path, lambda tok, val: [EpochEval(tok, val, batch_size=2, probe=False)], patience=1)
    trainer.train()
    assert trainer.state.global_step == 4
    assert trainer.state.best_metric is not None
    assert trainer.args.metric_for_best_model == "eval_exact_match" and trainer.args.load_best_model_at_end


def test_early_stopping_without_the_callback_is_refused(tmp_path):
    with pytest.raises(ValueError, match="EpochEval"):
        tiny_trainer(tmp_path, lambda tok, val: [], patience=1)


def test_a_measurement_leaves_the_random_state_as_it_found_it():
    import random

    import numpy as np
    import torch

    from helpers.training import _eval_mode

    model = torch.nn.Linear(2, 2)
    model.train()
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    expected = (torch.rand(1).item(), random.random(), np.random.rand())
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    with _eval_mode(model):
        assert not model.training
        torch.manual_seed(0), random.seed(0), np.random.seed(0)  # what lm-eval does
    assert model.training
    assert (torch.rand(1).item(), random.random(), np.random.rand()) == expected
