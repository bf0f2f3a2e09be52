"""One rank of the two-process weighing test (test_distributed.py starts it as torchrun would).

argv[1]: a folder for the rendezvous file and the output. Each rank takes its two of the four
micro-batches (target counts 14, 0 on rank 0; 3, 9 on rank 1) and accumulates them under DDP;
rank 0 writes the gradients of the step and its reported loss.
"""

import os
import sys
from pathlib import Path

from formers import storage
from formers.objectives import CausalLM
from formers.training import distributed
from tests.training.distributed_worker import job_port
from tests.training.weighting import micro_batches, step_gradients

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    os.environ["MASTER_PORT"] = job_port(folder, 0)
    rank = int(os.environ["RANK"])
    mine = micro_batches()[2 * rank : 2 * rank + 2]
    grads, metrics, trainer = step_gradients(CausalLM(), mine, 2, folder / "run", distributed="ddp")
    if rank == 0:
        storage.save_tensors(folder / "grads.safetensors", grads)
        storage.write_json(folder / "metrics.json", metrics)
    distributed.teardown()
