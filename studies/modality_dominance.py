"""One modality can dominate a multimodal model: trained where the question predicts the answer, a VQA model
leans on the question and under-uses the image (Goyal et al. 2017, "Making the V in VQA matter"; Agrawal et al.
2018, VQA-CP); modality dropout or a unimodal auxiliary loss (Wang et al. 2020, gradient blending) changes it.

Shapes colour and shape questions about one object (24x24 images, 8 colours and 8 shapes). The biased training
set is VQA-CP's construction on Shapes: for each question type one answer ("red" for colour, "circle" for shape)
makes up SHARE of its rows (studies/modality_bias.py draws it from the library's QuestionBatches). The natural
set holds the same number of rows drawn without bias (each answer ~1/8 of its type). Arms, each a config
choice of the same late-fusion model (and, in the full run, VisualBERT), the same Trainer and step count:

    natural                  trained on the unbiased rows (the control)
    biased                   trained on the biased rows
    biased + question drop   the same, each row's question blanked to "[CLS] [SEP]" with prob. P_DROP
                             (modality dropout of the dominant modality: a study-local objective wrapper)
    biased + image head      the same, plus an answer head on the image tower's pooled vector whose loss is
                             added to the fused one (a unimodal auxiliary loss, Wang et al. 2020, fixed weight)

Measured on the natural test split (new images, seen colour-shape pairs): accuracy on all rows, on rows whose
answer agrees with the training prior and on rows against it (VQA-CP's shift: a model that answers from the
question alone scores 0 there), and on the biased test (the training bias applied to test rows); importance
of each modality by ablation: the accuracy lost and the share of answers that change when each row's image is
replaced by another test image, or its question blanked; for VisualBERT also the attention mass its [CLS]
query puts on the image tokens (formers.interpret.modality_share), layer by layer.

Measured (full run, studies/README.md): the shift reproduces, "ignores the image" only in part. Late fusion (800
steps, 2 seeds): on colours the prior gets wrong, natural 1.00, biased 0.62, while on the biased test the biased
model scores 0.90; its image importance (accuracy lost to a swapped image) on colour questions 0.54 vs 0.87. Yet
its answers change with the image as often as the natural model's (0.87) and only 3% of its against-prior
answers are the prior's "red": it reads the image but learned the rare colours less well. VisualBERT (2,000
steps) comes closer to the claim: against the prior 0.12 vs 0.89, answers changed by a swapped image 0.21 vs
0.86, [CLS] attention on the image tokens 0.85/0.67/0.50 vs 0.99/0.98/0.77 by layer. The image-only head restores
late fusion (0.96 against the prior, importance 0.83); question dropout barely helps (0.68).

Full run: `python -m studies.modality_dominance --out studies/figures` (one thread: 10.4 CPU-min).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from formers.data.shapes_text import ANSWERS
from formers.interpret import capture_attention, modality_share
from formers.objectives.vqa import VQALoss, fusion_inputs, predict_answers
from formers.optim import ScheduleConfig
from formers.registry import build_model, model_config_from_dict
from formers.tasks.shapes_tasks import fit_model, task_tokenizer
from studies.common import curve, fit, pyplot, save, study_args
from studies.modality_bias import (
    DOMINANT,
    SHARE,
    ImageHeadLoss,
    PriorShifted,
    QuestionDropout,
    WithImageHead,
    agrees_with_prior,
    blank_questions,
    has_prior,
    prior_answer,
    question_rows,
    select_rows,
)

NAME = "modality_dominance"
CLAIM = "Trained where the question predicts the answer, a VQA model leans on the question and ignores the image"
P_DROP = 0.5  # question dropout: half the rows must be answered from the image (ModDrop-style, Neverova 2015)
AUX_WEIGHT = 1.0  # the image head's loss beside the fused one (gradient blending learns such weights; fixed here)

TEXT = {"d_model": 64, "n_heads": 4, "max_seq_len": 32, "dropout": 0.1, "n_layers": 2}
TOWER = {"family": "vit", "image_size": 24, "patch_size": 8, "d_model": 64, "n_heads": 4, "n_layers": 2,
         "position": "sincos2d", "pooling": "cls"}
LATE_FUSION = {"family": "late_fusion", "hidden": 128, "dropout": 0.0, "image": TOWER, "text": {"family": "bert",
                                                                                                   **TEXT}}
VISUALBERT = {"family": "sequence_classifier", "pooling": "cls", "dropout": 0.0,
              "trunk": {"family": "visualbert", **TEXT, "n_layers": 3, "image": TOWER}}
# family -> (model config, peak lr, share of steps warming up): README's settings (late fusion 1e-3; a post-norm
# BERT trunk needs 1e-4 with warmup)
FAMILIES = {"late fusion": (LATE_FUSION, 1e-3, 0.1), "VisualBERT": (VISUALBERT, 1e-4, 0.1)}
REMEDIES = ("natural", "biased", "biased + question drop", "biased + image head")


def build_arm(family: str, remedy: str, seed: int) -> tuple[torch.nn.Module, Any]:
    """(model, objective) of one arm: the remedies wrap the library's VQA loss, not the model's code."""
    torch.manual_seed(seed)
    config = model_config_from_dict(FAMILIES[family][0])
    model = build_model(fit_model(config, task_tokenizer().vocab_size, len(ANSWERS)))
    if remedy.endswith("question drop"):
        return model, QuestionDropout(VQALoss(), P_DROP)
    if remedy.endswith("image head"):
        return WithImageHead(model, len(ANSWERS)), ImageHeadLoss(VQALoss(), AUX_WEIGHT)
    return model, VQALoss()


def accuracy(model: torch.nn.Module, batches: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hit (N,) bool, predicted (N,))."""
    predicted, answers, _ = predict_answers(model, batches)
    return predicted == answers, predicted


def chunks(rows: dict[str, torch.Tensor], size: int = 256) -> list[dict[str, torch.Tensor]]:
    n = len(rows["answers"])
    return [{k: v[s : s + size] for k, v in rows.items()} for s in range(0, n, size)]


def measure(model: torch.nn.Module, test: dict[str, torch.Tensor], biased_test: torch.Tensor) -> dict[str, float]:
    """Accuracy on the natural test by group, on its biased selection, and the two ablations by question type:
    another test image in place of each row's own, and the question blanked."""
    hit, predicted = accuracy(model, chunks(test))
    swapped = {**test, "pixel_values": test["pixel_values"].roll(1, dims=0)}  # each row gets its neighbour's image
    swap_hit, swap_predicted = accuracy(model, chunks(swapped))
    blank_hit, blank_predicted = accuracy(model, chunks(blank_questions(test, torch.ones_like(hit))))
    colour, red = has_prior(test), agrees_with_prior(test)
    mean = lambda x: float(x.float().mean())  # noqa: E731
    out = {"natural test": mean(hit), "biased test": mean(hit[biased_test]), "colour, with prior": mean(hit[red]),
           "colour, against prior": mean(hit[colour & ~red]), "shape (no prior)": mean(hit[~colour]),
           # of those against the prior, how often the model says the prior's answer anyway
           "colour, against prior, answered the prior": mean((predicted == prior_answer(test["question_types"]))[
               colour & ~red])}
    for kind, rows in (("colour", colour), ("shape", ~colour)):
        out[f"{kind}: image importance"] = mean(hit[rows]) - mean(swap_hit[rows])
        out[f"{kind}: answers changed, image swapped"] = mean((predicted != swap_predicted)[rows])
        out[f"{kind}: question importance"] = mean(hit[rows]) - mean(blank_hit[rows])
        out[f"{kind}: answers changed, question blanked"] = mean((predicted != blank_predicted)[rows])
    return out


@torch.no_grad()
def image_attention_mass(model: torch.nn.Module, test: dict[str, torch.Tensor], n: int = 256) -> dict[str, list]:
    """Per question type and layer of a VisualBERT trunk: the share of its [CLS] query's attention on the image
    tokens (heads and rows averaged), what the classifier reads; formers.interpret.modality_share."""
    model.eval()
    out = {}
    for kind, rows in (("colour", has_prior(test)), ("shape", ~has_prior(test))):
        batch = {k: v[rows][:n] for k, v in test.items()}
        with capture_attention(model) as maps:
            model(**fusion_inputs(batch))
            names = [name for name in maps.run_order() if name.startswith("trunk.stack")]
            is_image = torch.arange(maps[names[0]].shape[-1]) >= batch["input_ids"].shape[1]  # text first, then image
            out[kind] = [float(modality_share(maps[name], is_image)[:, :, 0].mean()) for name in names]
    return out


def train_arm(family: str, remedy: str, data: dict, *, steps: int, seed: int) -> dict[str, Any]:
    config, lr, warmup = FAMILIES[family]
    model, objective = build_arm(family, remedy, seed)
    source = data["biased" if remedy.startswith("biased") else "natural"]
    source = PriorShifted(source.rows, source.index, batch_size=48, seed=seed)
    against = chunks({k: v[data["against"]] for k, v in data["test"].items()})
    start = time.process_time()
    result = fit(model, objective, source, steps=steps, lr=lr, batch_size=48, weight_decay=0.01,
                 schedule=ScheduleConfig(kind="cosine", warmup_steps=int(warmup * steps)), val_batches=against,
                 eval_every=max(steps // 10, 1), log_every=max(steps // 10, 1), seed=seed)
    fusion = model.fusion if isinstance(model, WithImageHead) else model
    out = {"params": sum(p.numel() for p in fusion.parameters()), "against_prior_curve":
           curve(result["history"], "val/accuracy"), **measure(fusion, data["test"], data["biased_test"])}
    if family == "VisualBERT":
        out["image attention mass"] = image_attention_mass(fusion, data["test"])
    out["cpu_seconds"] = time.process_time() - start
    return out


def make_data(train_images: int, test_images: int) -> dict[str, Any]:
    """The biased and natural training sets (equal row counts) and the natural test rows."""
    train = question_rows("train", train_images)
    biased = select_rows(train, SHARE, seed=1)
    natural = select_rows(train, None, seed=2, n_images=len(biased) // 2)
    test = question_rows("test", test_images)
    biased_test = torch.zeros(len(test["answers"]), dtype=torch.bool)
    biased_test[select_rows(test, SHARE, seed=3)] = True
    return {"biased": PriorShifted(train, biased, batch_size=48, seed=0),
            "natural": PriorShifted(train, natural, batch_size=48, seed=0),
            "test": test, "against": has_prior(test) & ~agrees_with_prior(test), "biased_test": biased_test}


def summarise(runs: dict[str, dict]) -> dict[str, dict[str, list[float]]]:
    """"family | remedy" -> metric -> its values over the seeds (numbers only)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, run in runs.items():
        arm = out.setdefault(name.rsplit(" | seed", 1)[0], {})
        for key, value in run.items():
            if isinstance(value, float):
                arm.setdefault(key, []).append(value)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = study_args(__doc__, argv, NAME)
    if args.quick:  # late fusion, one seed, the control, the bias and the remedy that works
        train_images, test_images = 4096, 256
        plan = [("late fusion", r, 0, 300) for r in ("natural", "biased", "biased + image head")]
    else:
        train_images, test_images = 16384, 1024
        plan = [("late fusion", r, s, 800) for s in (0, 1) for r in REMEDIES]
        plan += [("VisualBERT", r, 0, 2000) for r in ("natural", "biased")]  # for its attention mass
    data = make_data(train_images, test_images)
    result = {"claim": CLAIM, "dominant": DOMINANT, "share": SHARE, "question_drop": P_DROP,
              "aux_weight": AUX_WEIGHT, "train_pool_rows": len(data["biased"].rows["answers"]),
              "train_rows": len(data["biased"].index), "test_rows": len(data["biased_test"]),
              "test_rows_against_prior": int(data["against"].sum()), "plan": plan}
    runs: dict[str, dict] = {}
    for family, remedy, seed, steps in plan:  # the numbers so far are written after every arm
        runs[f"{family} | {remedy} | seed {seed}"] = train_arm(family, remedy, data, steps=steps, seed=seed)
        result |= {"complete": len(runs) == len(plan), "summary": summarise(runs), "runs": runs}
        if result["complete"] or not args.quick:
            save(args.out, NAME, result, figure(runs, result["summary"]))
    return result


ACCURACY = ("biased test", "colour, with prior", "colour, against prior", "colour, against prior, answered the prior",
            "shape (no prior)")
IMPORTANCE = ("colour: image importance", "shape: image importance", "colour: question importance",
              "shape: question importance")


def bars(ax, summary: dict[str, dict], keys: Sequence[str], title: str) -> None:
    """Mean over seeds as bars, each seed as a dot."""
    names = list(summary)
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        x = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(names))]
        ax.bar(x, [sum(summary[n][key]) / len(summary[n][key]) for n in names], width, label=key)
        for xj, n in zip(x, names, strict=True):
            ax.plot([xj] * len(summary[n][key]), summary[n][key], "k.", ms=3)
    ax.set_xticks(range(len(names)), [n.replace(" | ", "\n").replace(" + ", "\n+ ") for n in names], fontsize=7)
    ax.set(ylim=(0, 1.3), title=title)
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def figure(runs: dict[str, dict], summary: dict[str, dict]):
    plt = pyplot()
    masses = {n: r["image attention mass"] for n, r in runs.items() if "image attention mass" in r}
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    bars(axes[0, 0], summary, ACCURACY, "accuracy on test images (natural unless 'biased test')")
    bars(axes[0, 1], summary, IMPORTANCE, "modality importance: accuracy lost when the image is swapped\n"
                                          "for another test image, or the question blanked")
    colours = dict(zip(REMEDIES, ("tab:blue", "tab:red", "tab:orange", "tab:green"), strict=True))
    for name, run in runs.items():
        family, remedy, seed = name.split(" | ")
        steps = sorted(run["against_prior_curve"])
        style = "--" if family == "VisualBERT" else "-" if seed == "seed 0" else ":"
        axes[1, 0].plot(steps, [run["against_prior_curve"][s] for s in steps], style, color=colours[remedy],
                        marker="o", ms=2, lw=1, label=name)
    axes[1, 0].set(xlabel="step", ylabel="accuracy", ylim=(0, 1.05),
                   title="colour questions whose answer is not the prior's 'red' (natural test)")
    axes[1, 0].legend(fontsize=6)
    ax = axes[1, 1]
    for name, mass in masses.items():
        for kind, style in (("colour", "-"), ("shape", "--")):
            ax.plot(range(1, len(mass[kind]) + 1), mass[kind], style, marker="o", color=colours[name.split(" | ")[1]],
                    label=f"{name}: {kind} questions")
        ax.set_xticks(range(1, len(mass["colour"]) + 1))
    ax.set(xlabel="VisualBERT layer", ylabel="[CLS] attention on image tokens", ylim=(0, 1),
           title="attention mass on the image (formers.interpret.modality_share)" if masses else
           "attention mass: VisualBERT arms run in the full run only")
    if masses:
        ax.legend(fontsize=6)
    fig.text(0.5, 0.005, "Intel Xeon (Sapphire Rapids), one thread, shared machine; fp32", ha="center", fontsize=7)
    return fig


if __name__ == "__main__":
    main()
