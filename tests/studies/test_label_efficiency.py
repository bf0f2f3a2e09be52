"""The label-efficiency study's --quick run: what it shows and what it does not.

The claim (pretraining helps most when labels are scarce) did not reproduce at the study's budget: no arm left
the answer prior (studies/README.md). The quick run (a tiny trunk, MLM-only pretraining of 150 steps, 250
fine-tuning steps on 40 images = 240 labelled questions) measured the same thing: both arms end at 0.292 held-out
(prior 0.302). What both runs do show is that the pretrained trunk gets to the prior sooner; that, and the null
end result, are what this test holds the study to.
"""

import json

import pytest

from studies import label_efficiency


@pytest.mark.slow  # ~1 CPU-min of training: the default suite keeps to 10 min on 2 cores; CI runs it (FORMERS_SLOW=1)
def test_pretrained_trunk_learns_sooner_but_neither_arm_beats_the_prior(tmp_path):
    result = label_efficiency.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "label_efficiency.png").stat().st_size > 0
    assert json.loads((tmp_path / "label_efficiency.json").read_text())["claim"] == result["claim"]
    smallest = str(result["label_images"][0])
    scratch, pretrained = result["runs"]["scratch"][smallest], result["runs"]["MLM (pretrained here)"][smallest]
    assert scratch["questions"] == 240  # 40 images x one question of each of the 6 types

    def early(run):  # held-out accuracy over the first three evaluations (steps 41, 82, 123 of 250)
        steps = sorted(run["curve"], key=int)[1:4]
        return sum(run["curve"][s] for s in steps) / len(steps)

    # measured 0.210 vs 0.179: the pretrained arm led by 0.031 at each of the three; 0.01 is a third of that
    assert early(pretrained) > early(scratch) + 0.01
    prior = scratch["heldout prior"]["all"]
    # measured 0.292 for both (prior 0.302); 0.05 is ~1.5 standard errors of 192 held-out questions: a model
    # that read the image (the README's 4,000-step runs: 0.37-0.40) would fail this
    for run in (scratch, pretrained):
        assert run["heldout"]["all"] < prior + 0.05
