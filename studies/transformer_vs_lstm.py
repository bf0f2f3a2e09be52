"""Claim: a Transformer relates distant tokens directly where an LSTM must carry them in its state,
and it trains in parallel over positions where an LSTM steps through them one at a time.

Two measurements, a causal GPT against the LSTM baseline (`formers.models.lstm`, same
forward and objective, hidden width chosen for the same parameter count):

1. dependency at a distance: the label at position i is the digit at i - lag, for lags 1
   to 64. Attention reaches any offset in one step; the LSTM must hold the last `lag` digits
   in its state. Held-out accuracy per lag, each model trained separately per lag.
2. training throughput (forward + backward, tokens per CPU-second) as the sequence grows,
   with the tokens per batch fixed, so only the length changes. Measured as process CPU
   time on `--threads` threads: robust to other jobs on a shared machine.

    .venv/bin/python -m studies.transformer_vs_lstm --out runs/studies/transformer_vs_lstm    # ~4 min on 2 cores
    .venv/bin/python -m studies.transformer_vs_lstm --quick --out /tmp/tvl                    # ~10 s
"""

from __future__ import annotations

import dataclasses
import random
import time

import torch

from formers.models import GPT, LSTM, GPTConfig, LSTMConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM
from formers.optim import ScheduleConfig
from studies.common import accuracy, fit, pyplot, save, study_args, task_source, token_batch

NAME = "transformer_vs_lstm"


@dataclasses.dataclass
class Setting:
    lags: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    answered: int = 32  # labelled positions per sequence: the sequence is lag + answered long
    d_model: int = 64  # the GPT's width; the LSTM's is matched in parameters
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    n_val: int = 200
    speed_d_model: int = 128
    speed_lengths: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048)
    speed_tokens: int = 4096  # tokens per batch: batch size = speed_tokens / length
    speed_repeats: int = 5
    seed: int = 0


QUICK = Setting(lags=(2, 24), answered=8, steps=120, n_val=100, speed_lengths=(32, 256), speed_tokens=1024,
                speed_repeats=2)
VOCAB = 10


def lstm_params(d: int, vocab_size: int, n_layers: int = 2) -> int:
    """Parameters of LSTMConfig(d_model=d): tied embedding, 4 gates x (input + recurrent weights, 2 biases), norm."""
    return vocab_size * d + n_layers * 4 * (2 * d * d + 2 * d) + 2 * d


def lstm_width(target_params: int, vocab_size: int, n_layers: int = 2) -> int:
    """The LSTM hidden width whose parameter count is closest to `target_params`."""
    return min(range(8, 2049, 2), key=lambda d: abs(lstm_params(d, vocab_size, n_layers) - target_params))


def make_models(d_model: int, max_len: int) -> dict[str, torch.nn.Module]:
    gpt = GPT(GPTConfig(vocab_size=VOCAB, d_model=d_model, n_heads=4, n_layers=2, max_seq_len=max_len,
                        position="rotary", dropout=0.0))
    width = lstm_width(sum(p.numel() for p in gpt.parameters()), VOCAB)
    return {"transformer": gpt, "lstm": LSTM(LSTMConfig(vocab_size=VOCAB, d_model=width, n_layers=2, dropout=0.0))}


def lag_row(rng: random.Random, lag: int, s: Setting) -> tuple[list[int], list[int]]:
    x = [rng.randrange(VOCAB) for _ in range(lag + s.answered)]
    return x, [IGNORE_INDEX] * lag + x[:-lag]


def dependency(s: Setting) -> dict[str, dict[int, float]]:
    """Held-out accuracy per lag and model."""
    out: dict[str, dict[int, float]] = {}
    for lag in s.lags:
        rng = random.Random(f"val:{lag}")
        val = [token_batch([lag_row(rng, lag, s) for _ in range(s.n_val)])]
        torch.manual_seed(s.seed)
        for name, model in make_models(s.d_model, lag + s.answered).items():
            source = task_source(lambda r, lag=lag: token_batch([lag_row(r, lag, s) for _ in range(s.batch_size)]),
                                 s.seed)
            fit(model, CausalLM(), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
                schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 10), seed=s.seed)
            out.setdefault(name, {})[lag] = accuracy(model, val)
            print(f"lag {lag:3d} {name:12s} accuracy {out[name][lag]:.3f}")
    return out


def throughput(s: Setting) -> tuple[dict[str, dict[int, float]], dict[str, int]]:
    """Training tokens per CPU-second per length (best of `speed_repeats`), and each model's parameter count."""
    torch.manual_seed(s.seed)
    models = make_models(s.speed_d_model, max(s.speed_lengths))
    out: dict[str, dict[int, float]] = {name: {} for name in models}
    for length in s.speed_lengths:
        batch_size = max(1, s.speed_tokens // length)
        ids = torch.randint(0, VOCAB, (batch_size, length))
        batch = {"input_ids": ids, "labels": ids}
        for name, model in models.items():
            times = []
            for _ in range(s.speed_repeats + 1):  # the first call warms up allocators and kernels
                start = time.process_time()
                CausalLM()(model, batch)["loss"].backward()
                times.append(time.process_time() - start)
            out[name][length] = batch_size * length / max(min(times[1:]), 1e-9)
        print(f"length {length:5d}: " + ", ".join(f"{n} {v[length]:,.0f} tok/s" for n, v in out.items()))
    return out, {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


def plot(acc: dict, speed: dict, s: Setting):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, values in acc.items():
        ax.plot(list(values), list(values.values()), marker="o", label=name)
    ax.axhline(0.1, color="grey", ls=":", label="chance (0.1)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("distance to the token to recall (lag)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"recall the digit `lag` positions back ({s.steps} steps)", fontsize=10)
    for name, values in speed.items():
        bx.plot(list(values), list(values.values()), marker="o", label=name)
    bx.set_xscale("log", base=2)
    bx.set_xlabel(f"sequence length ({s.speed_tokens} tokens per batch)")
    bx.set_ylabel("training tokens per CPU-second")
    bx.set_title(f"throughput, {torch.get_num_threads()} CPU thread(s)", fontsize=10)
    for a in (ax, bx):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    acc = dependency(s)
    speed, params = throughput(s)
    result = {"claim": "attention relates distant tokens directly; an LSTM must carry them, one step at a time",
              "setting": dataclasses.asdict(s), "threads": torch.get_num_threads(), "accuracy_by_lag": acc,
              "tokens_per_cpu_second": speed, "speed_params": params}
    return save(args.out, NAME, result, plot(acc, speed, s))


if __name__ == "__main__":
    main()
