import json

import pytest

from studies import fusion_types


@pytest.mark.slow  # ~1 CPU-min of training: the default suite keeps to 10 min on 2 cores; CI runs it (FORMERS_SLOW=1)
def test_fusion_types_at_equal_parameter_budgets(tmp_path):
    result = fusion_types.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "fusion_types.png").stat().st_size > 0
    assert json.loads((tmp_path / "fusion_types.json").read_text())["claim"] == result["claim"]
    vqa, itm = result["vqa"], result["itm"]
    assert set(vqa) == set(itm) == {"late fusion", "single stream", "co-attention"}
    # the budgets: 1,293,193 / 1,304,201 / 1,321,097 parameters with the 39-answer VQA head (max/min 1.022); the
    # ITM head (2 outputs) takes the same 4,773 away from every arm
    for task in (vqa, itm):
        counts = [run["params"] for run in task.values()]
        assert max(counts) / min(counts) < 1.05
    assert vqa["single stream"]["params"] - itm["single stream"]["params"] == 37 * 129  # 128 weights + a bias each
    # every score is a fraction and every ITM pair kind was scored; the quick run checks the plumbing, not the
    # ordering (40 VQA steps leave every arm below the answer prior: 0.17 held-out against 0.36)
    for run in itm.values():
        for split in ("test", "heldout"):
            assert {"positive", "hard", "easy", "balanced", "positive_beats_hard"} <= set(run[split])
            assert all(0.0 <= v <= 1.0 for v in run[split].values())
    for run in vqa.values():
        assert set(run["heldout"]) == {"all", "colour", "size", "count"}
        # each arm learns which answers a question type takes: held-out accuracy 0.00-0.05 at step 0 (answers of
        # the wrong type), 0.17 after 40 steps (0.17-0.19 after 60); the thresholds sit between the two
        first, last = run["curve"][0], run["curve"][max(run["curve"])]
        assert first < 0.1 < 0.15 < last
