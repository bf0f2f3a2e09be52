"""`formers convert SRC DST [--to hf|formers]`: both directions from the command line."""

from __future__ import annotations

import json

import torch
import transformers as tf

import formers
from formers.cli import main
from tests.interop.references import reference


def test_convert_round_trip_through_the_command_line(tmp_path, capsys):
    ref = reference("bart")
    ref.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0  # default: to the other layout
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["family"] == "bart"
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back"), "--to", "hf"]) == 0
    assert "(formers bart) ->" in capsys.readouterr().out
    back = tf.BartForConditionalGeneration.from_pretrained(tmp_path / "back").eval()
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = ref(x, decoder_input_ids=x).logits
        torch.testing.assert_close(back(x, decoder_input_ids=x).logits, expected)
        torch.testing.assert_close(formers.load(tmp_path / "ours")(x, decoder_input_ids=x).logits, expected)


def test_convert_errors_print_one_line_and_exit_1(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "out").exists()
