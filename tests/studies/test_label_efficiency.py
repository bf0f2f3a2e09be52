"""The label-efficiency study's --quick run: a pretrained trunk beats scratch when labels are scarce."""

import json

from studies import label_efficiency


def test_pretraining_helps_when_labels_are_scarce(tmp_path):
    result = label_efficiency.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "label_efficiency.png").stat().st_size > 0
    assert json.loads((tmp_path / "label_efficiency.json").read_text())["claim"] == result["claim"]
    runs, smallest = result["runs"], str(result["label_images"][0])
    scratch, pretrained = runs["scratch"][smallest], runs["MLM (pretrained here)"][smallest]
    assert scratch["questions"] == 240  # 40 images x one question of each of the 6 types
    # MARGINS: filled in from the quick run's measurements
    assert pretrained["heldout"]["all"] > scratch["heldout"]["all"]
