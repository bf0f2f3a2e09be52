"""One rank of a multi-process test run, started by test_distributed.py as torchrun would start it.

argv[1] is a folder for rendezvous files, argv[2] a JSON list of jobs (formers CLI argument lists),
run in order, each in its own process group (the Trainer joins it and leaves it), as separate
`torchrun ... -m formers.cli train` launches would. One launch for several jobs saves the seconds
each Python process spends importing torch.
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

from formers.cli import main


def job_port(folder: Path, job: int) -> str:
    """Rank 0 picks a free port just before the job (not all up front: gloo's own connections take
    ephemeral ports meanwhile) and tells the others through a file."""
    path = folder / f"port-{job}"
    if os.environ["RANK"] == "0":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        path.with_suffix(".tmp").write_text(port)
        path.with_suffix(".tmp").rename(path)
        return port
    while not path.exists():
        time.sleep(0.05)
    return path.read_text()


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for i, argv in enumerate(json.loads(sys.argv[2])):
        os.environ["MASTER_PORT"] = job_port(folder, i)
        code = main(argv)
        if code != 0:
            sys.exit(code)
