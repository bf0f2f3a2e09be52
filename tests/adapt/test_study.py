"""The transfer/forgetting study's measurements and data (the MiniLM runs themselves take minutes)."""

import torch

from studies.transfer_forgetting import STRATEGIES, markdown, paragraphs_by_topic, retrieval_at_1, spearman


def test_forgetting_measures():
    sims = torch.eye(4) + 0.1 * torch.arange(16.0).view(4, 4) / 16
    assert retrieval_at_1(sims) == 1.0
    assert retrieval_at_1(sims.flip(1)) == 0.0
    assert spearman(sims, 2 * sims + 1) == 1.0  # an order-preserving change forgets nothing
    assert spearman(sims, -sims) == -1.0


def test_topics_have_enough_paragraphs_and_the_table_renders():
    by_topic = paragraphs_by_topic()
    sizes = sorted((len(p) for p in by_topic.values()), reverse=True)
    assert sizes[5] >= 40 and sum(sizes[6:]) >= 300  # 6 task classes; a held-out pool from the other topics
    assert all(len(p.split()) >= 25 for paras in by_topic.values() for p in paras)
    row = {"strategy": STRATEGIES[0], "accuracy": 0.5, "retrieval@1": 0.4, "forgetting": 0.1,
           "similarity_spearman": 0.9, "trainable": 1234, "cpu_seconds": 5.0, "seconds": 3.0}
    assert "| feature extraction | 0.500 | 0.400 | +0.100 | 0.900 | 1,234 | 5 | 3 |" in markdown([row])


def test_quick_study_on_minilm_writes_its_table_and_figure(tmp_path):
    from studies.transfer_forgetting import main

    report = main(["--quick", "--threads", "1", "--out", str(tmp_path), "--only", "feature extraction", "LoRA"])
    frozen, lora = report["rows"]
    pretrained = report["pretrained"]
    # a frozen trunk is bit-for-bit the pretrained one: nothing it could do is lost
    assert frozen["forgetting"] == 0.0 and frozen["similarity_spearman"] > 0.999999
    assert frozen["trainable"] == 384 * 6 + 6  # the new head only
    assert lora["trainable"] < 0.02 * 22_567_686  # adapters and head: under 2% of the model
    assert frozen["accuracy"] > pretrained["accuracy"] + 0.2  # the task is learnable from the features
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"transfer_forgetting.{suffix}").stat().st_size > 100
