"""The align_* recipes chained in miniature: SFT -> reward model -> PPO, and DPO, through the task registry."""

from pathlib import Path

from formers.tasks import get_task, load_recipe
from formers.tasks.alignment import run_ppo
from formers.training import Trainer

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = {"model.d_model": 32, "objective.rules.n_train": 200, "objective.rules.n_val": 32,
        "objective.rules.n_test": 32, "trainer.max_steps": 4, "trainer.batch_size": 16, "trainer.eval_batches": 1,
        "trainer.progress": False, "trainer.tensorboard": False}


def stage(name, out, **overrides):
    recipe = load_recipe(RECIPES / f"align-{name}.yaml", {**TINY, **overrides})
    task = get_task(recipe.task)
    run = task.build(recipe)
    result = Trainer(run.model, run.objective, run.train_source, config=recipe.trainer, out_dir=out,
                     val_batches=run.val_batches, tokenizer=run.tokenizer,
                     extra_state={"recipe": recipe.to_dict()}).fit()
    return recipe, run, result, task.report(recipe, run)


def test_stages_chain_through_their_recipes(tmp_path):
    _, _, sft, report = stage("sft", tmp_path / "sft")
    assert "val/loss" in sft["last_eval"] and "satisfaction/all" in report
    _, _, rm, report = stage("reward", tmp_path / "rm", **{"objective.init_from": str(tmp_path / "sft")})
    assert "val/accuracy" in rm["last_eval"] and "pairwise accuracy" in report
    _, run, dpo, report = stage("dpo", tmp_path / "dpo", **{"objective.init_from": str(tmp_path / "sft")})
    assert "val/margin" in dpo["last_eval"] and "kl" in report
    ppo_overrides = {k: v for k, v in TINY.items() if not k.startswith("trainer.")}
    recipe = load_recipe(RECIPES / "align-ppo.yaml", {
        **ppo_overrides, "objective.policy": str(tmp_path / "sft"), "objective.reward": str(tmp_path / "rm"),
        "objective.ppo.iterations": 2, "objective.ppo.rollout_batch": 16, "objective.ppo.minibatch_size": 8,
        "objective.ppo.progress": False, "objective.ppo.device": "cpu"})
    result = run_ppo(recipe, tmp_path / "ppo")
    assert result["iteration"] == 2 and 0.0 <= result["test"]["satisfaction/all"] <= 1.0
    assert "ppo/true_all" in result["history"][-1]
