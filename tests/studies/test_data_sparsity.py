"""The data-sparsity study's --quick run: a locked pretrained MiniLM text tower against one trained from scratch,
at 1% and 100% of Fashion-MNIST's caption pairs (60 steps of 64 pairs, the recipe's CNN at quarter width)."""

import json

import pytest

from studies import data_sparsity


@pytest.mark.slow  # ~1 CPU-min of training: the default suite keeps to 10 min on 2 cores; CI runs it (FORMERS_SLOW=1)
@pytest.mark.filterwarnings("ignore:.*has no weights for.*:UserWarning")  # MiniLM is a bare BertModel
def test_a_pretrained_text_tower_reads_new_class_names_a_scratch_one_cannot(tmp_path):
    result = data_sparsity.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "data_sparsity.png").stat().st_size > 0
    assert json.loads((tmp_path / "data_sparsity.json").read_text())["claim"] == result["claim"]
    locked, scratch = result["runs"]["locked MiniLM (LiT)"], result["runs"]["from scratch"]
    assert set(locked) == set(scratch) == {0.01, 1.0}
    for fraction in (0.01, 1.0):
        lit, own = locked[fraction], scratch[fraction]
        chance = lit["chance"]["zero_shot"]
        assert chance < 0.15  # 10 classes, about balanced in the first 1,000 test images
        # both towers learn: 0.47-0.49 zero-shot with unseen prompts after 60 steps (measured), chance ~0.12
        assert lit["zero_shot_prompts"] > chance + 0.25 and own["zero_shot_prompts"] > chance + 0.25
        assert lit["i2t_R@1"] > lit["chance"]["i2t_R@1"] + 0.25 and own["i2t_R@1"] > own["chance"]["i2t_R@1"] + 0.25
        # classes named by words no caption used: the scratch tower reads them all as [UNK], so it can be no better
        # than chance (0.03-0.08 measured); MiniLM has met them elsewhere (0.33 measured at both fractions)
        assert own["zero_shot_synonyms"] < chance + 0.1
        assert lit["zero_shot_synonyms"] > own["zero_shot_synonyms"] + 0.15
        # what did NOT reproduce: new framing words ("a blurry photo of a {}.") do not hurt the scratch tower; its
        # accuracy with unseen prompts is within 0.004 of that with its training templates (measured), so no
        # more than a 0.05 drop is allowed
        assert own["zero_shot_prompts"] > own["zero_shot_templates"] - 0.05
