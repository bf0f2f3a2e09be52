"""An AVX2-only laptop, reproduced on whatever CPU runs the tests: the precision choice and the quick start.

`ATEN_CPU_CAPABILITY=avx2` makes torch's own kernels dispatch as on an AVX2 CPU, `ONEDNN_MAX_CPU_ISA=AVX2`
caps oneDNN (its bf16 kernels disappear: bf16 matmuls drop from ~1,300 to ~1 GFLOP/s on the Sapphire Rapids
this was written on) and `MKL_ENABLE_INSTRUCTIONS=AVX2` caps MKL's fp32 GEMM. They act only when set before
Python starts, hence the subprocess.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

SCRIPT = r"""
import json, sys
import torch
from formers.cli import main
from formers.generation import generate
from formers.models import LSTM, LSTMConfig
from formers.training.precision import choose_precision, probe

facts = probe(torch.device("cpu"))
result = {"capability": facts.capability, "onednn_bf16": facts.onednn_bf16,
          "auto": choose_precision("auto", facts).precision,
          "bf16_warning": choose_precision("bf16", facts).warning}
# torch's CPU autocast sends nn.LSTM to a oneDNN bf16 kernel that does not exist here: the model must cope
lstm = LSTM(LSTMConfig(vocab_size=20, d_model=16, n_layers=2)).eval()
with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
    result["lstm_dtype"] = str(lstm(torch.randint(0, 20, (2, 5))).logits.dtype)
    result["lstm_generated"] = generate(lstm, torch.randint(0, 20, (1, 3)), max_new_tokens=4).shape[1]
result["train_exit"] = main(["train", str(sys.argv[1]), "--out", sys.argv[2], *sys.argv[3:]])
print("RESULT " + json.dumps(result))
"""

# The quick start's recipe and model, a few small steps of it
QUICK = ["--trainer.max_steps=3", "--trainer.batch_size=4", "--trainer.eval_batches=1", "--data.max_chars=60000",
         "--sample.max_new_tokens=8", "--trainer.tensorboard=false", "--trainer.save_every=0"]


def test_an_avx2_cpu_gets_fp32_and_the_quick_start_trains(tmp_path):
    # a separate compile cache: inductor's cache key misses ATEN_CPU_CAPABILITY, and kernels compiled for the
    # machine's own ISA fail under the AVX2 dispatch (seen with test_compiled_training_matches_eager...)
    env = {**os.environ, **AVX2, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "recipes" / "gpt-pydocs-char.yaml"), str(tmp_path / "run"), *QUICK],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["capability"] == "AVX2" and result["onednn_bf16"] is False  # the variables took effect
    assert result["auto"] == "fp32"
    assert "emulated" in result["bf16_warning"]
    assert result["lstm_dtype"] == "torch.bfloat16" and result["lstm_generated"] == 7
    assert result["train_exit"] == 0
    assert "precision: auto -> fp32 (bf16 would be emulated here" in proc.stdout
    assert "val/loss: " in proc.stdout and (tmp_path / "run" / "step-00000003" / "model.safetensors").is_file()
