"""PPO end to end on the length rule: KL starts at zero, the rule-satisfaction rate rises, checkpoints load."""

import pytest
import torch

import formers
from formers.alignment import (
    SFT,
    PPOConfig,
    PPOTrainer,
    encode_prompts,
    evaluate_policy,
    rule_metrics,
    rule_scorer,
    sft_batches,
    sft_examples,
)
from formers.training import Trainer, TrainerConfig

from .conftest import length_task, one_thread, tiny_gpt

MAX_NEW = 8


@pytest.fixture(scope="module")
def sft_policy(tokenizer, tmp_path_factory):
    """A tiny GPT fine-tuned on noisy demonstrations: it writes letters but gets the length right rarely."""
    task = length_task(n_train=2000)
    model = tiny_gpt(tokenizer.vocab_size)
    config = TrainerConfig(max_steps=150, batch_size=64, optimizer={"lr": 3e-3, "weight_decay": 0.0},
                           schedule={"kind": "constant"}, eval_every=0, progress=False, tensorboard=False,
                           precision="fp32")
    source = sft_batches(sft_examples(task.demonstrations("train"), tokenizer, 24), tokenizer.pad_id, batch_size=64)
    with one_thread():  # module fixtures run before the autouse one
        Trainer(model, SFT(), source, config=config, out_dir=tmp_path_factory.mktemp("sft")).fit()
    return model.eval()


def ppo(policy, tokenizer, out_dir, **kw):
    task = length_task()
    base = dict(iterations=12, rollout_batch=64, minibatch_size=16, ppo_epochs=4, max_new_tokens=MAX_NEW,
                optimizer={"lr": 1e-3, "weight_decay": 0.0}, progress=False, device="cpu")
    prompts = encode_prompts(task.prompts("train"), tokenizer, 24, MAX_NEW)
    return PPOTrainer(policy, rule_scorer(task, tokenizer), prompts, config=PPOConfig(**{**base, **kw}),
                      out_dir=out_dir, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, tokenizer=tokenizer,
                      metrics_fn=rule_metrics(task, tokenizer))


def satisfaction(model, tokenizer):
    task = length_task()
    prompts = task.prompts("test", 192)
    return evaluate_policy(model, tokenizer, task, prompts, max_new_tokens=MAX_NEW, seed=3)["satisfaction/all"]


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_first_rollout_has_zero_kl(sft_policy, tokenizer, tmp_path, estimator):
    import copy

    trainer = ppo(copy.deepcopy(sft_policy), tokenizer, tmp_path, kl={"estimator": estimator, "coef": 0.5})
    batch, stats = trainer.rollout()
    assert stats["kl"] == 0.0 and stats["kl_penalty"] == 0.0
    assert batch.logp.shape == batch.mask.shape and 0.0 <= stats["true_all"] <= 1.0


def test_short_ppo_run_raises_rule_satisfaction(sft_policy, tokenizer, tmp_path):
    import copy

    before = satisfaction(sft_policy, tokenizer)
    trainer = ppo(copy.deepcopy(sft_policy), tokenizer, tmp_path, kl={"coef": 0.05, "target": 3.0, "horizon": 200})
    result = trainer.fit()
    after = satisfaction(trainer.policy, tokenizer)
    assert before < 0.5 and after > before + 0.25, (before, after)
    history = result["history"]
    assert {"ppo/kl", "ppo/entropy", "ppo/clipfrac", "ppo/explained_variance", "ppo/score"} <= set(history[-1])
    assert history[-1]["ppo/kl"] < 15.0  # the KL penalty keeps the policy within reach of the reference
    reloaded = formers.load(tmp_path)  # the checkpoint's policy is a plain GPT folder
    for key, value in trainer.policy.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_resume_reproduces_the_uninterrupted_run(sft_policy, tokenizer, tmp_path):
    import copy
    import shutil

    full = ppo(copy.deepcopy(sft_policy), tokenizer, tmp_path / "full", iterations=4, kl={"target": 1.0})
    full.fit()
    split = ppo(copy.deepcopy(sft_policy), tokenizer, tmp_path / "split", iterations=4, save_every=2,
                kl={"target": 1.0})
    split.fit()
    shutil.rmtree(tmp_path / "split" / "step-00000004")  # as if the run had died after iteration 2's checkpoint
    resumed = ppo(copy.deepcopy(sft_policy), tokenizer, tmp_path / "split", iterations=4, kl={"target": 1.0})
    resumed.fit(resume=True)
    assert resumed.kl.coef == full.kl.coef and resumed.reward_norm == full.reward_norm
    for (key, a), b in zip(full.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    assert torch.equal(full.value_head.weight, resumed.value_head.weight)
