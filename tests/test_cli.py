"""The command line end to end, and its one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from formers.cli import COMMANDS, build_parser, flag_values, main, split_overrides
from formers.errors import ConfigError
from formers.tasks.base import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "gpt-pydocs-char.yaml")
SMALL = [
    "--model.n_layers=2", "--model.d_model=64", "--model.n_heads=4", "--data.seq_len=64", "--data.max_chars=200000",
    "--trainer.batch_size=16", "--trainer.eval_every=0", "--trainer.eval_batches=4", "--trainer.save_every=40",
    "--trainer.progress=false", "--trainer.tensorboard=false", "--trainer.optimizer.lr=0.01",
    "--trainer.schedule.warmup_steps=5", "--sample.max_new_tokens=20",
]


def cli(*args):
    """Run `formers` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "formers.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_split_overrides_reads_yaml_scalars():
    rest, overrides = split_overrides(["train", "r.yaml", "--out", "x", "--trainer.max_steps=5", "--a.b", "true"])
    assert rest == ["train", "r.yaml", "--out", "x"]
    assert overrides == {"trainer.max_steps": 5, "a.b": True}


def test_exponent_floats_without_a_dot_are_numbers_in_overrides_and_recipes(tmp_path):
    # YAML 1.1 (PyYAML's default) reads `2e-3` as a string, which the float field then refused
    _, overrides = split_overrides(["--trainer.optimizer.lr=2e-3", "--a.b=-1E+2", "--a.c=1.5e3", "--a.d=e5"])
    assert overrides == {"trainer.optimizer.lr": 0.002, "a.b": -100.0, "a.c": 1500.0, "a.d": "e5"}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(re.sub(r"lr: [0-9.e-]+", "lr: 3e-3", (ROOT / "recipes" / "gpt-pydocs-char.yaml").read_text()))
    assert load_recipe(recipe).trainer.optimizer.lr == 0.003


def test_flags_take_no_value_or_a_boolean_one():
    assert flag_values(["train", "r", "--resume"]) == ["train", "r", "--resume"]
    assert flag_values(["train", "--resume", "r"]) == ["train", "--resume", "r"]  # r is the recipe, not a value
    assert flag_values(["--resume=true", "--resume", "false", "--greedy=no"]) == [
        "--resume", "--no_resume", "--no_greedy"]
    for argv, resume in ((["--resume"], True), (["--resume=true"], True), (["--resume", "false"], False), ([], False)):
        args = build_parser().parse_args(flag_values(["train", "r.yaml", "--out", "d", *argv]))
        assert args["train"].resume is resume and args["train"].recipe == "r.yaml"
    with pytest.raises(ConfigError, match="--resume='maybe' is not allowed"):
        flag_values(["--resume=maybe"])


# In a fresh interpreter: build the parser, print whether torch came with it, and the CPU seconds spent.
PARSER_ONLY = """
import resource, sys
from formers.errors import ConfigError
from formers.cli import build_parser
build_parser()
usage = resource.getrusage(resource.RUSAGE_SELF)
print("torch" in sys.modules, usage.ru_utime + usage.ru_stime)
"""


def test_help_lists_every_command_and_answers_without_torch():
    done = subprocess.run([sys.executable, "-c", PARSER_ONLY], capture_output=True, text=True, timeout=60)
    torch_loaded, cpu_s = done.stdout.split()
    assert torch_loaded == "False", done.stderr
    # CPU seconds, not wall time, so other processes on a shared machine do not count. Measured ~0.1 s (Xeon
    # Sapphire Rapids, under load); `import torch` alone costs ~1.3 s of CPU, so 0.5 s fails if torch sneaks in.
    assert float(cpu_s) < 0.5, cpu_s
    main_help = cli("--help")
    assert main_help.returncode == 0
    for name, line in COMMANDS.items():
        assert name in main_help.stdout and line.split()[0] in main_help.stdout
    train_help = cli("train", "--help")
    assert train_help.returncode == 0 and "--resume" in train_help.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", RECIPE, "--out", str(out), "--trainer.max_steps=200", *SMALL])
    assert code == 0
    return out


def test_train_lowers_validation_loss_and_reports(trained, capsys):
    lines = (trained / "metrics.jsonl").read_text().splitlines()

    val = [json.loads(line)["val/loss"] for line in lines if "val/loss" in line]
    # a character model starts near ln(vocab) ~ 4.6 nats; 200 small steps must cut it by more than a third
    assert val[0] > 4.0 and val[-1] < 0.67 * val[0], val
    assert (trained / "step-00000200" / "tokenizer.json").is_file()


def test_resume_continues_from_the_latest_checkpoint(tmp_path):
    assert main(["train", RECIPE, "--out", str(tmp_path), "--trainer.max_steps=40", *SMALL]) == 0
    assert main(["train", RECIPE, "--out", str(tmp_path), "--resume=true", "--trainer.max_steps=44", *SMALL]) == 0
    assert (tmp_path / "step-00000044").is_dir() and (tmp_path / "step-00000040").is_dir()
    assert main(["train", RECIPE, "--out", str(tmp_path), "--trainer.max_steps=46", *SMALL, "--resume"]) == 0
    assert (tmp_path / "step-00000046").is_dir()


def test_a_time_budget_stops_the_run_and_says_how_to_continue(tmp_path, capsys):
    # 1e-6 minutes: the first step is already past it
    args = ["train", RECIPE, "--out", str(tmp_path), "--trainer.max_steps=40", "--trainer.max_minutes=1.0e-6", *SMALL]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # the recipe's expectation is for 40 steps: a run the clock stopped is not reported as missing it
    assert "(not reached: stopped by trainer.max_minutes=1e-06 at step 1 of 40)" in printed and "MISSED" not in printed
    assert "--resume=true continues" in printed and (tmp_path / "step-00000001").is_dir()


def test_generate_and_eval_from_the_command_line(trained):
    gen = cli("generate", str(trained), "--prompt", "The ", "--max_new_tokens", "30", "--seed", "3")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("The ") and len(gen.stdout) > 10
    assert re.search(r"30 tokens in [0-9.]+ s, [0-9.]+ tokens/s \(fp32 weights; first token after", gen.stderr)
    int8 = cli("generate", str(trained), "--prompt", "The ", "--max_new_tokens", "30", "--greedy", "--weights", "int8")
    assert int8.returncode == 0 and int8.stdout.startswith("The ") and "(int8 weights;" in int8.stderr, int8.stderr
    int4 = cli("generate", str(trained), "--prompt", "The ", "--max_new_tokens", "30", "--greedy", "--weights", "int4")
    assert int4.returncode == 0 and int4.stdout.startswith("The ") and "(int4 weights;" in int4.stderr, int4.stderr
    bad = cli("generate", str(trained), "--prompt", "The ", "--weights", "int3")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "error: weights='int3' is not a weight format; expected one of ['fp32', 'bf16', 'int8', 'int4']"]
    ev = cli("eval", str(trained))
    assert ev.returncode == 0, ev.stderr
    assert "val/loss" in ev.stdout


@pytest.mark.slow  # compiling the decoding steps takes ~20 s on 2 cores
def test_compiled_generation_from_the_command_line_gives_the_eager_text(trained):
    args = ("generate", str(trained), "--prompt", "The ", "--max_new_tokens", "30", "--greedy", "--weights", "int8")
    eager, compiled = cli(*args), cli(*args, "--compile")
    assert compiled.returncode == 0 and "(int8 weights, compiled;" in compiled.stderr, compiled.stderr
    assert compiled.stdout == eager.stdout and len(eager.stdout) > 10  # compiling changes the speed, not the text


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", RECIPE, "--out", "{tmp}/a", "--trainer.max_stepz=3"], "unknown field(s) ['max_stepz']"),
        (["train", RECIPE, "--out", "{tmp}/b", "--trainer.max_steps=many"], "trainer.max_steps='many'"),
        (["train", RECIPE, "--out", "{tmp}/c", "--model.position=spiral"], "model.position='spiral'"),
        (["train", "{tmp}/nope.yaml", "--out", "{tmp}/d"], "does not exist"),
        (["generate", "{tmp}/missing", "--prompt", "x"], "does not exist"),
        (["eval", "{tmp}"], "no complete checkpoint"),
    ],
)
def test_errors_print_one_line_and_exit_nonzero(tmp_path, args, expected):
    res = cli(*[a.format(tmp=tmp_path) for a in args])
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.stderr
    assert not any(p.name in {"a", "b", "c", "d"} for p in tmp_path.iterdir())  # nothing half-written


def test_corrupt_checkpoint_is_refused_in_one_line(trained, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained / "step-00000200", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    res = cli("generate", str(broken), "--prompt", "x")
    assert res.returncode == 1 and "truncated or corrupt" in res.stderr and "Traceback" not in res.stderr
