"""RLHF on a task with a known answer: SFT -> reward model -> PPO, and separately DPO, judged by the rule.

Claim: on preference data, a Bradley-Terry reward model learns the preference, and both PPO
against it and DPO (with and without a reference) raise the true rule-satisfaction rate far
above the SFT policy's, while the KL to the SFT reference stays bounded. The rule (formers/alignment/rules.py) is the
ground truth, so every number is checked without people in the loop.

    python -m studies.rlhf_pipeline --out runs/rlhf            # full recipes, a few minutes on 2 cores
    python -m studies.rlhf_pipeline --quick --out runs/rlhf    # fewer steps, about a minute

Writes OUT/rlhf_pipeline.json (the numbers) and OUT/rlhf_pipeline.png (the curves); with
--figures DIR, copies both there (studies/figures/ holds the committed ones).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from formers.alignment import RuleTask, evaluate_policy, frozen_copy, pairwise_accuracy
from formers.alignment.data import PREFERENCE_FIELDS, collate_pairs, encode_records, fixed_batches
from formers.tasks import get_task, load_recipe
from formers.tasks.alignment import run_ppo
from formers.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"trainer.progress": False, "trainer.tensorboard": False}
QUICK = {  # the same recipes with fewer steps
    "sft": {"trainer.max_steps": 400},
    "reward": {"trainer.max_steps": 300},
    "ppo": {"objective.ppo.iterations": 60},
    "dpo": {"trainer.max_steps": 150},
}


def recipe(stage: str, quick: bool, overrides: dict[str, Any]):
    changes = {**QUIET, **(QUICK[stage] if quick else {}), **overrides}
    if stage == "ppo":  # PPO's own loop reads objective.ppo; the trainer section is unused
        changes = {k: v for k, v in changes.items() if not k.startswith("trainer.")}
        changes["objective.ppo.progress"] = False
    return load_recipe(ROOT / "recipes" / f"align-{stage}.yaml", changes)


def train(stage_recipe, out: Path, callbacks=()) -> tuple[Any, dict]:
    """Build a Trainer-shaped stage from its recipe and fit it."""
    run = get_task(stage_recipe.task).build(stage_recipe)
    trainer = Trainer(run.model, run.objective, run.train_source, config=stage_recipe.trainer, out_dir=out,
                      val_batches=run.val_batches, tokenizer=run.tokenizer, callbacks=callbacks,
                      extra_state={"recipe": stage_recipe.to_dict()})
    return run, trainer.fit()


def judge(model, tokenizer, r, reference=None, n: int | None = None, seed: int = 0) -> dict[str, float]:
    task = RuleTask(r.objective.rules)
    prompts = task.prompts("test")[:n] if n else task.prompts("test")
    return evaluate_policy(model, tokenizer, task, prompts, max_new_tokens=r.sample.max_new_tokens,
                           reference=reference, temperature=r.sample.temperature, seed=seed)


def dpo_tracker(r, tokenizer, reference, every: int, curve: list) -> Any:
    """A Trainer callback: the DPO policy's true satisfaction and KL on 128 test prompts every `every` steps."""

    def track(trainer) -> None:
        if trainer.step % every == 0:
            numbers = judge(trainer.model, tokenizer, r, reference, n=128, seed=1)
            curve.append({"step": trainer.step, "satisfaction": numbers["satisfaction/all"], "kl": numbers["kl"]})

    return track


def dpo_stages(out: Path, quick: bool, sft_run, results: dict, seconds: dict) -> list[dict]:
    """DPO, then reference-free DPO, from the SFT run; both judged against the SFT policy. Returns DPO's curve."""
    start = time.perf_counter()
    dpo_recipe = recipe("dpo", quick, {"objective.init_from": str(out / "sft")})
    dpo_curve: list[dict] = []
    reference = frozen_copy(sft_run.model)
    tracker = dpo_tracker(dpo_recipe, sft_run.tokenizer, reference, max(1, dpo_recipe.trainer.max_steps // 10),
                          dpo_curve)
    dpo_run, dpo_fit = train(dpo_recipe, out / "dpo", callbacks=[tracker])
    last = judge(dpo_run.model.eval(), sft_run.tokenizer, dpo_recipe, reference, n=128, seed=1)  # the curve's end
    dpo_curve.append({"step": dpo_fit["step"], "satisfaction": last["satisfaction/all"], "kl": last["kl"]})
    results["dpo"] = judge(dpo_run.model, dpo_run.tokenizer, dpo_recipe, reference)
    results["dpo"]["val_accuracy"] = dpo_fit["last_eval"]["val/accuracy"]  # implied-reward accuracy on pairs
    seconds["dpo"] = time.perf_counter() - start

    start = time.perf_counter()
    free_recipe = recipe("dpo", quick, {"objective.init_from": str(out / "sft"),
                                             "objective.dpo.reference_free": True})
    free_run, free_fit = train(free_recipe, out / "dpo_reference_free")
    results["dpo_reference_free"] = judge(free_run.model.eval(), free_run.tokenizer, free_recipe, reference)
    results["dpo_reference_free"]["val_accuracy"] = free_fit["last_eval"]["val/accuracy"]
    seconds["dpo_reference_free"] = time.perf_counter() - start

    return dpo_curve


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="fewer steps in every stage")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny matrices: 1 is fastest)")
    parser.add_argument("--figures", type=Path, default=None, help="also copy the PNG and JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out, seconds, results = args.out, {}, {}

    start = time.perf_counter()
    sft_recipe = recipe("sft", args.quick, {})
    sft_run, _ = train(sft_recipe, out / "sft")
    sft = sft_run.model.eval()
    results["sft"] = judge(sft, sft_run.tokenizer, sft_recipe)
    seconds["sft"] = time.perf_counter() - start

    start = time.perf_counter()
    rm_recipe = recipe("reward", args.quick, {"objective.init_from": str(out / "sft")})
    rm_run, rm_fit = train(rm_recipe, out / "reward")
    test_pairs = encode_records(RuleTask(rm_recipe.objective.rules).preferences("test"), PREFERENCE_FIELDS,
                                rm_run.tokenizer, rm_recipe.model.max_seq_len)
    batches = fixed_batches(test_pairs, lambda ex: collate_pairs(ex, rm_run.tokenizer.pad_id), 128)
    results["reward_model"] = {"test_accuracy": pairwise_accuracy(rm_run.model, batches),
                               "val_accuracy": rm_fit["last_eval"]["val/accuracy"]}
    seconds["reward_model"] = time.perf_counter() - start

    start = time.perf_counter()
    ppo_recipe = recipe("ppo", args.quick, {"objective.policy": str(out / "sft"),
                                            "objective.reward": str(out / "reward")})
    ppo_fit = run_ppo(ppo_recipe, out / "ppo")
    results["ppo"] = ppo_fit["test"]
    seconds["ppo"] = time.perf_counter() - start

    dpo_curve = dpo_stages(out, args.quick, sft_run, results, seconds)

    report = {"quick": args.quick, "seconds": seconds, "results": results,
              "curves": {"reward_model": _history(rm_fit["history"], ("train/loss", "train/accuracy", "val/accuracy")),
                         "ppo": _history(ppo_fit["history"], ("ppo/true_all", "ppo/kl", "ppo/score", "ppo/kl_coef",
                                                              "ppo/entropy", "ppo/explained_variance")),
                         "dpo": dpo_curve},
              "kl_target": ppo_recipe.objective.ppo.kl.target}
    (out / "rlhf_pipeline.json").write_text(json.dumps(_rounded(report), indent=1))
    plot(report, out / "rlhf_pipeline.png")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        for name in ("rlhf_pipeline.json", "rlhf_pipeline.png"):
            shutil.copy(out / name, args.figures / name)
    print(json.dumps({"results": results, "seconds": seconds}, indent=2))
    return report


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits: the JSON is for reading."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _history(history: list[dict], keys: tuple[str, ...]) -> dict[str, list]:
    return {k: [[r["step"], r[k]] for r in history if k in r] for k in keys}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, results = report["curves"], report["results"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    ax = axes[0]
    for key, style in (("train/accuracy", "-"), ("val/accuracy", "o-")):
        ax.plot(*zip(*curves["reward_model"][key], strict=True), style, label=key)
    ax.set(title="reward model: pairwise accuracy", xlabel="step", ylim=(0.4, 1.02))
    ax.legend()
    ax = axes[1]
    ax.plot(*zip(*curves["ppo"]["ppo/true_all"], strict=True), label="PPO (rollouts)")
    ax.axhline(results["sft"]["satisfaction/all"], color="gray", ls="--", label="SFT")
    ax.set(title="true rule satisfaction: PPO", xlabel="PPO iteration", ylim=(0, 1.02))
    ax.legend()
    ax = axes[2]
    steps = [p["step"] for p in curves["dpo"]]
    ax.plot(steps, [p["satisfaction"] for p in curves["dpo"]], "o-", label="DPO")
    ax.axhline(results["sft"]["satisfaction/all"], color="gray", ls="--", label="SFT")
    ax.set(title="true rule satisfaction: DPO", xlabel="DPO step", ylim=(0, 1.02))
    kl_ax = ax.twinx()
    kl_ax.plot(steps, [p["kl"] for p in curves["dpo"]], "s:", color="tab:red", label="KL to SFT (right)")
    kl_ax.set_ylabel("KL, nats", color="tab:red")
    ax.legend(handles=ax.get_lines() + kl_ax.get_lines(), loc="lower right")
    ax = axes[3]
    ax.plot(*zip(*curves["ppo"]["ppo/kl"], strict=True), label="PPO (per iteration)")
    if report.get("kl_target"):
        ax.axhline(report["kl_target"], color="gray", ls="--", label="PPO KL target")
    ax.set(title="KL(policy || SFT) per response, nats", xlabel="PPO iteration")
    ax.legend()
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
