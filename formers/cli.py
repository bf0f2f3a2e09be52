"""The `formers` command: train, generate, eval, convert, viz (bench joins as it lands).

Options are typed and parsed by jsonargparse. Recipe overrides are dotted paths
(`--trainer.max_steps=50`); their values are read as YAML scalars and validated by the
recipe's typed configs. On/off options are flags (`--resume`), which also take a value
(`--resume=true`, `--resume false`). Every FormersError prints as one line and exits 1.

Nothing here imports torch (formers/__init__ is lazy): `formers --help` answers at once, and
each command imports what it needs when it runs.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonargparse import ActionYesNo, ArgumentParser

from formers.config import read_yaml
from formers.errors import ConfigError, FormersError


def split_overrides(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Separate `--section.field=value` / `--section.field value` overrides from ordinary options."""
    rest, overrides = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if "." in key:
            if "=" in arg:
                raw = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                i += 1
                raw = argv[i]
            else:
                raise ConfigError(f"override {arg} has no value; write {arg}=VALUE")
            try:
                overrides[key] = read_yaml(raw)
            except yaml.YAMLError:
                overrides[key] = raw
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


# on/off options: `--resume` alone, or with a value as `--resume=true`
FLAGS = ("--resume", "--greedy", "--head_importance")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def flag_values(argv: Sequence[str]) -> list[str]:
    """`--flag=VALUE` / `--flag VALUE` (VALUE true or false) -> `--flag` / `--no_flag`; a bare `--flag` stays."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in FLAGS and not eq and i + 1 < len(argv) and argv[i + 1].lower() in _TRUE + _FALSE:
            value, eq = argv[i + 1], "="
            i += 1
        if name in FLAGS and eq:
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{name}={value!r} is not allowed; write {name} alone, or {name}=true / false")
            arg = name if value.lower() in _TRUE else f"--no_{name[2:]}"
        out.append(arg)
        i += 1
    return out


# subcommand -> one line, shown by `formers --help`
COMMANDS = {
    "train": "train a recipe (YAML) into a run directory; --resume continues it",
    "generate": "generate text from a checkpoint, streaming to the terminal",
    "eval": "evaluate a checkpoint on its recipe's validation data",
    "convert": "convert a checkpoint between the formers and Hugging Face layouts",
    "viz": "draw a checkpoint's attention on a text and/or image as one self-contained HTML page",
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="formers", description="Transformers from one set of blocks.", exit_on_error=True)
    commands = parser.add_subcommands(dest="command")

    train = ArgumentParser(description="Train a recipe. Override any field: --trainer.max_steps=50")
    train.add_argument("recipe", type=str, help="path to a recipe YAML (see recipes/)")
    train.add_argument("--out", type=str, required=True, help="run directory (checkpoints, logs)")
    train.add_argument("--resume", action=ActionYesNo, default=False, help="continue from the last checkpoint in --out")
    commands.add_subcommand("train", train, help=COMMANDS["train"])

    gen = ArgumentParser(description="Generate text from a checkpoint, streaming to the terminal.")
    gen.add_argument("checkpoint", type=str, help="checkpoint folder or run directory")
    gen.add_argument("--prompt", type=str, required=True)
    gen.add_argument("--max_new_tokens", type=int, default=200)
    gen.add_argument("--greedy", action=ActionYesNo, default=False, help="argmax decoding instead of sampling")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top_k", type=int | None, default=None)
    gen.add_argument("--top_p", type=float | None, default=0.95)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--weights", type=str, default="fp32",
                     help="fp32 (exact); bf16 (half the bytes; fast where the CPU has AMX or AVX512-BF16); int8 "
                          "(weight-only, a quarter of the bytes: faster decoding, quality in benchmarks/README.md); "
                          "int4 (weight-only in groups of 64, an eighth of the bytes plus scales; CPU only)")
    gen.add_argument("--compile", action=ActionYesNo, default=False,
                     help="run the decoding steps through torch.compile: compiling takes tens of seconds (cached on "
                          "disk for later runs), then each batch-1 step is 1.2-1.8x faster (benchmarks/README.md)")
    gen.add_argument("--images", type=str, default="generated.png",
                     help="text-to-image models: the PNG to write (a row per prompt; separate prompts with |)")
    gen.add_argument("--n_samples", type=int, default=4, help="text-to-image models: images per prompt")
    gen.add_argument("--rerank", type=str | None, default=None,
                     help="text-to-image models: a CLIP checkpoint trained on Shapes; each row is ordered by it")
    commands.add_subcommand("generate", gen, help=COMMANDS["generate"])

    ev = ArgumentParser(description="Evaluate a checkpoint on its recipe's validation data.")
    ev.add_argument("checkpoint", type=str, help="checkpoint folder or run directory")
    commands.add_subcommand("eval", ev, help=COMMANDS["eval"])

    conv = ArgumentParser(description="Convert a checkpoint between the formers and Hugging Face layouts.")
    conv.add_argument("src", type=str, help="formers checkpoint / run directory, or a Hugging Face model folder")
    conv.add_argument("dst", type=str, help="folder to write")
    conv.add_argument("--to", type=Literal["hf", "formers"] | None, default=None, help="default: the other layout")
    commands.add_subcommand("convert", conv, help=COMMANDS["convert"])

    viz = ArgumentParser(description="Draw attention (head view, layers x heads, image overlays, modality "
                                     "importance) as one HTML page that needs no network.")
    viz.add_argument("checkpoint", type=str, help="checkpoint folder or run directory")
    viz.add_argument("--text", type=str | None, default=None,
                     help="the text to read (a captioner: the caption to explain; default its own greedy one)")
    viz.add_argument("--image", type=str | None, default=None,
                     help="PNG or JPEG for image models; default for models trained on Shapes: a Shapes test image")
    viz.add_argument("--out", type=str, default="attention.html", help="the page to write")
    viz.add_argument("--max_new_tokens", type=int, default=20, help="decoders: tokens to generate")
    viz.add_argument("--max_layers", type=int | None, default=None, help="keep this many evenly spaced layers")
    viz.add_argument("--max_tokens", type=int, default=96, help="longer texts are shown in blocks of tokens")
    viz.add_argument("--head_importance", action=ActionYesNo, default=False,
                     help="models that predict tokens: mask each head, show the loss rise (a forward per head)")
    commands.add_subcommand("viz", viz, help=COMMANDS["viz"])
    return parser


def cmd_train(args, overrides: dict[str, Any]) -> None:
    from formers.tasks import get_task, load_recipe
    from formers.tasks.base import expectation_lines
    from formers.training import Trainer, distributed

    recipe = load_recipe(args.recipe, overrides)
    out = Path(args.out)
    task = get_task(recipe.task)
    if task.own_loop is not None:
        return train_own_loop(task, recipe, out, args.resume)
    run = task.build(recipe)
    if distributed.is_main():  # under torchrun every rank runs this function; rank 0 speaks
        print(f"{recipe.task}: {sum(p.numel() for p in run.model.parameters()):,} parameters -> {out}")
    trainer = Trainer(
        run.model, run.objective, run.train_source, config=recipe.trainer, out_dir=out,
        val_batches=run.val_batches, tokenizer=run.tokenizer, extra_state={"recipe": recipe.to_dict()},
    )
    result = trainer.fit(resume=args.resume)
    if not trainer.is_main:
        return
    run = dataclasses.replace(run, model=trainer.model)  # after FSDP: the whole model, gathered on rank 0
    before, after = result["first_eval"], result["last_eval"]
    for key in sorted(after):
        start = f"{before[key]:.4f} -> " if key in before else ""
        print(f"{key}: {start}{after[key]:.4f}")
    test = task.test_metrics(recipe, run) if task.test_metrics is not None else {}
    for key, value in sorted(test.items()):
        print(f"{key}: {value:.4f}")
    stopped = (f"stopped by trainer.max_minutes={recipe.trainer.max_minutes:g} at step {trainer.step} of "
               f"{recipe.trainer.max_steps}" if result["out_of_time"] else "")
    for line in expectation_lines(recipe.expect, {**after, **test}):
        # the recipe states what max_steps reach: a run the clock stopped early is not held to it
        print(line.replace("(MISSED)", f"(not reached: {stopped})") if stopped else line)
    print(task.report(recipe, run))
    print(f"checkpoint: {out / f'step-{trainer.step:08d}'}  loss curve: {out / 'loss.png'}")
    if stopped:
        print(f"{stopped}; the same command with --resume=true continues")


def train_own_loop(task, recipe, out: Path, resume: bool) -> None:
    """Tasks that are not one Trainer loop (PPO): they train, save and evaluate themselves."""
    from formers.errors import ConfigError
    from formers.tasks.base import expectation_lines
    from formers.training import distributed

    if distributed.world_size() > 1:
        raise ConfigError(f"task {recipe.task} runs in one process; start it without torchrun")
    print(f"{recipe.task}: its own training loop -> {out}")
    result = task.own_loop(recipe, out, resume)
    for key, value in sorted(result["test"].items()):
        print(f"test/{key}: {value:.4f}")
    for line in expectation_lines(recipe.expect, result["test"]):
        print(line)
    print(f"run directory: {out}")


def cmd_generate(args) -> None:
    import time

    import torch

    from formers import generate, load, load_tokenizer, quantize_weights

    model, tokenizer = load(args.checkpoint), load_tokenizer(args.checkpoint)
    warn_if_bf16_is_emulated(args.weights)
    quantize_weights(model, args.weights)
    if getattr(type(model), "generates_images", False):
        if args.compile:
            raise ConfigError("--compile applies to text decoding; text-to-image sampling runs eagerly")
        return generate_images(model, tokenizer, args)
    ids = torch.tensor([tokenizer.encode(args.prompt)])
    if ids.numel() == 0:
        raise ConfigError("--prompt encodes to no tokens; give some text")
    print(args.prompt, end="", flush=True)
    pending: list[int] = []
    times: list[float] = []  # when each token arrived

    def stream(token: torch.Tensor) -> None:
        times.append(time.perf_counter())
        # Byte-level tokens may split a character: print once the pending ids decode cleanly.
        pending.append(int(token[0]))
        text = tokenizer.decode(pending)
        if "\ufffd" not in text:
            print(text, end="", flush=True)
            pending.clear()

    start = time.perf_counter()
    generate(
        model, ids, max_new_tokens=args.max_new_tokens, do_sample=not args.greedy, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id,
        generator=torch.Generator().manual_seed(args.seed), streamer=stream, compile=args.compile,
    )
    print(tokenizer.decode(pending))  # what an incomplete character at the very end left pending
    print(speed_line(start, times, f"{args.weights} weights" + (", compiled" if args.compile else "")), file=sys.stderr)


def speed_line(start: float, times: list[float], how: str) -> str:
    """How fast tokens came: the first after the prompt's pass (prefill), the rest one decoding step each."""
    if not times:
        return f"0 tokens ({how})"
    total = times[-1] - start
    line = f"{len(times)} tokens in {total:.2f} s, {len(times) / total:.1f} tokens/s ({how}"
    if len(times) > 1:
        decode = (len(times) - 1) / (times[-1] - times[0])
        line += f"; first token after {times[0] - start:.2f} s, then {decode:.1f} tokens/s"
    return line + ")"


def warn_if_bf16_is_emulated(weights: str) -> None:
    if weights != "bf16":
        return
    from formers.training.precision import cpu_facts, describe, native_bf16

    if not native_bf16(cpu_facts()):
        print(f"warning: --weights bf16 on a CPU without native bf16 ({describe(cpu_facts())}): every product "
              "is emulated through fp32; --weights int8 reads fewer bytes and runs natively", file=sys.stderr)


def generate_images(model, tokenizer, args) -> None:
    """A text-to-image checkpoint: sample --n_samples images per prompt, optionally ordered by a CLIP, as a PNG."""
    import torch

    from formers.tasks.text_to_image_judge import load_judge
    from formers.text_to_image import rerank, sample_images, save_image_grid

    prompts = [p.strip() for p in args.prompt.split("|") if p.strip()]
    if not prompts:
        raise ConfigError("--prompt holds no caption; give one, or several separated by |")
    images = sample_images(model, tokenizer, prompts, n_samples=args.n_samples, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, generator=torch.Generator().manual_seed(args.seed))
    if args.rerank is not None:
        order = rerank(load_judge(args.rerank), prompts, images)  # (P, N), most similar first
        images = images[torch.arange(len(prompts))[:, None], order]
    path = save_image_grid(images, args.images, prompts)
    print(f"{len(prompts)} prompt(s) x {args.n_samples} images -> {path}"
          + (f" (each row ordered by {args.rerank}, best first)" if args.rerank else ""))


def cmd_eval(args) -> None:
    from formers import load, load_tokenizer
    from formers.storage import resolve_checkpoint
    from formers.tasks import Run, checkpoint_recipe, get_task
    from formers.training import Trainer

    folder = resolve_checkpoint(args.checkpoint)
    recipe = checkpoint_recipe(folder)
    model = load(folder)
    tokenizer = load_tokenizer(folder) if (folder / "tokenizer.json").is_file() else None  # image tasks have none
    task = get_task(recipe.task)
    val_batches = task.eval_data(recipe, tokenizer)
    trainer = Trainer(model, task.make_objective(recipe), None, config=recipe.trainer, out_dir=folder,
                      val_batches=val_batches)
    metrics = trainer.evaluate()
    if task.test_metrics is not None:
        run = Run(model=trainer.model, objective=trainer.objective, train_source=None, val_batches=val_batches,
                  tokenizer=tokenizer)
        metrics.update(task.test_metrics(recipe, run))
    for key, value in sorted(metrics.items()):
        print(f"{key}: {value:.4f}")


def cmd_convert(args) -> None:
    from formers.interop import load_hf_tokenizer, save_hf
    from formers.io import load
    from formers.storage import read_config, resolve_checkpoint, save_model

    folder = resolve_checkpoint(args.src)
    from_hf = "family" not in read_config(folder)  # Hugging Face configs name a model_type instead
    to = args.to or ("formers" if from_hf else "hf")
    model = load(folder)
    has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt"))
    tokenizer = load_hf_tokenizer(folder) if has_tokenizer else None
    (save_hf if to == "hf" else save_model)(model, args.dst, tokenizer)
    print(f"{folder} ({'hf' if from_hf else 'formers'} {model.config.family}) -> {args.dst} ({to})")


def cmd_viz(args) -> None:
    from formers import load, load_tokenizer
    from formers.interpret.inputs import load_pixels
    from formers.interpret.runs import build_view
    from formers.interpret.viewer import write_page
    from formers.storage import resolve_checkpoint

    folder = resolve_checkpoint(args.checkpoint)
    model = load(folder)
    tokenizer = load_tokenizer(folder) if (folder / "tokenizer.json").is_file() else None  # image models have none
    pixels = load_pixels(folder, model.config, args.image)
    view = build_view(model, tokenizer, text=args.text, pixel_values=pixels, max_new_tokens=args.max_new_tokens,
                      max_layers=args.max_layers, heads=args.head_importance,
                      title=f"{model.config.family}: {folder.name}")
    path = write_page(view, args.out, max_tokens=args.max_tokens)
    print(f"{len(view.layers)} attention maps of {folder} -> {path}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, overrides = split_overrides(argv)
        args = build_parser().parse_args(flag_values(rest))
        command = args.command
        sub = args[command]
        if command == "train":
            cmd_train(sub, overrides)
        elif overrides:
            raise ConfigError(f"{command} takes no recipe overrides, got {sorted(overrides)}")
        elif command == "generate":
            cmd_generate(sub)
        elif command == "eval":
            cmd_eval(sub)
        elif command == "convert":
            cmd_convert(sub)
        elif command == "viz":
            cmd_viz(sub)
    except FormersError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is intact", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
