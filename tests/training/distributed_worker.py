"""One rank of a multi-process test run, started by test_distributed.py as torchrun would start it.

argv[1] is a JSON list of jobs, each {"port": int, "argv": [formers CLI arguments]}; the jobs run
in order, each in its own process group (the Trainer joins it and leaves it), as separate
`torchrun ... -m formers.cli train` launches would. One launch for several jobs saves the
seconds each Python process spends importing torch.
"""

import json
import os
import shutil
import sys

from formers.cli import main

if __name__ == "__main__":
    for job in json.loads(sys.argv[1]):
        os.environ["MASTER_PORT"] = str(job["port"])
        if job.get("delete") and os.environ["RANK"] == "0":
            shutil.rmtree(job["delete"])  # as if the run had died after the previous checkpoint
        code = main(job["argv"])
        if code != 0:
            sys.exit(code)
