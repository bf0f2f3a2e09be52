"""A preference task with a known ground truth, so alignment is checkable without people.

Each prompt asks for something a rule can check:

    keyword  "say cat:"  -> the response's words include "cat"       ("dog cat" yes, "sun box" no)
    length   "len 4:"    -> the response has exactly 4 characters     ("abcd" yes, "ab" no)
    sum      "sum 3+4:"  -> the response is the decimal sum           ("7" yes, "8" no)

A noisy demonstrator writes the supervised data: it satisfies the rule with probability
`demo_quality` and otherwise writes a plausible response that violates it, so the SFT
policy learns the format but satisfies the rule only about `demo_quality` of the time.
Preference pairs put a satisfying response (chosen) against a violating one (rejected)
for the same prompt, as a labeller following the rule would. Reward models, PPO and DPO
are then judged by the rule itself on fresh prompts.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Literal

from formers.config import Config, check

WORDS = ("cat", "dog", "sun", "red", "box", "owl", "pie", "map")
LETTERS = "abcdef"
MAX_LENGTH = 6  # the length rule asks for 1..MAX_LENGTH characters
RuleName = Literal["keyword", "length", "sum"]
SPLITS = {"train": 0, "val": 1, "test": 2}  # disjoint random streams per split


class Keyword:
    name = "keyword"

    def prompt(self, rng: random.Random) -> str:
        return f"say {rng.choice(WORDS)}:"

    def satisfied(self, prompt: str, response: str) -> bool:
        return _arg(prompt) in response.split()

    def respond(self, prompt: str, rng: random.Random, good: bool) -> str:
        word = _arg(prompt)
        others = [w for w in WORDS if w != word]
        words = [rng.choice(others) for _ in range(rng.randint(1, 3))]
        if good:
            words[rng.randrange(len(words))] = word
        return " ".join(words)


class Length:
    name = "length"

    def prompt(self, rng: random.Random) -> str:
        return f"len {rng.randint(1, MAX_LENGTH)}:"

    def satisfied(self, prompt: str, response: str) -> bool:
        return len(response) == int(_arg(prompt))

    def respond(self, prompt: str, rng: random.Random, good: bool) -> str:
        n = int(_arg(prompt))
        length = n if good else rng.choice([m for m in range(1, MAX_LENGTH + 1) if m != n])
        return "".join(rng.choice(LETTERS) for _ in range(length))


class Sum:
    name = "sum"

    def prompt(self, rng: random.Random) -> str:
        return f"sum {rng.randint(0, 9)}+{rng.randint(0, 9)}:"

    def satisfied(self, prompt: str, response: str) -> bool:
        return response == str(_total(prompt))

    def respond(self, prompt: str, rng: random.Random, good: bool) -> str:
        total = _total(prompt)
        # Wrong answers are near misses, as a careless adder's are: a reward model must then learn exact sums.
        return str(total if good else rng.choice([s for s in range(max(0, total - 3), total + 4) if s != total]))


RULES = {rule.name: rule for rule in (Keyword(), Length(), Sum())}


def _arg(prompt: str) -> str:
    """'say cat:' -> 'cat'."""
    return prompt.split(" ", 1)[1].rstrip(":")


def _total(prompt: str) -> int:
    a, b = _arg(prompt).split("+")
    return int(a) + int(b)


@dataclasses.dataclass(kw_only=True)
class RulesConfig(Config):
    rules: list[RuleName] = dataclasses.field(default_factory=lambda: ["keyword", "length", "sum"])
    demo_quality: float = 0.3  # fraction of supervised demonstrations that satisfy their rule
    off_task: float = 0.25  # fraction of rejected responses written for another kind of prompt
    n_train: int = 4000  # records per training set (SFT demonstrations, preference pairs)
    n_val: int = 256  # held-out records (validation loss, reward-model accuracy)
    n_test: int = 512  # fresh prompts on which the final policies are judged
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.rules) > 0, "RulesConfig.rules", self.rules, "at least one of keyword, length, sum")
        check(0.0 <= self.demo_quality <= 1.0, "RulesConfig.demo_quality", self.demo_quality, "a value in [0, 1]")
        check(0.0 <= self.off_task <= 1.0, "RulesConfig.off_task", self.off_task, "a value in [0, 1]")
        for name in ("n_train", "n_val", "n_test"):
            check(getattr(self, name) > 0, f"RulesConfig.{name}", getattr(self, name), "a positive int")


class RuleTask:
    """Prompts, demonstrations and preference pairs drawn from the configured rules."""

    def __init__(self, config: RulesConfig | None = None) -> None:
        self.config = config or RulesConfig()
        self.rules = [RULES[name] for name in self.config.rules]

    def _rng(self, split: str, kind: str) -> random.Random:
        return random.Random(f"{self.config.seed}/{SPLITS[split]}/{kind}")  # str seeds are stable across runs

    def _size(self, split: str) -> int:
        return {"train": self.config.n_train, "val": self.config.n_val, "test": self.config.n_test}[split]

    def prompts(self, split: str, n: int | None = None) -> list[str]:
        rng = self._rng(split, "prompts")
        return [rng.choice(self.rules).prompt(rng) for _ in range(n or self._size(split))]

    def demonstrations(self, split: str, n: int | None = None) -> list[dict[str, str]]:
        """{"prompt", "response"} records from the noisy demonstrator."""
        rng = self._rng(split, "sft")
        out = []
        for _ in range(n or self._size(split)):
            rule = rng.choice(self.rules)
            prompt = rule.prompt(rng)
            good = rng.random() < self.config.demo_quality
            out.append({"prompt": prompt, "response": rule.respond(prompt, rng, good)})
        return out

    def preferences(self, split: str, n: int | None = None) -> list[dict[str, str]]:
        """{"prompt", "chosen", "rejected"} records: chosen satisfies the rule, rejected does not.

        A fraction `off_task` of rejected responses answer another rule's prompt (letters where words were
        asked for): without them a reward model has never seen such responses, and PPO finds that it
        scores them highly (reward hacking; Gao et al. 2023 measure how this grows with optimisation).
        """
        rng = self._rng(split, "pairs")
        out = []
        for _ in range(n or self._size(split)):
            rule = rng.choice(self.rules)
            prompt = rule.prompt(rng)
            rejected = rule.respond(prompt, rng, False)
            if rng.random() < self.config.off_task:
                rejected = self._off_task(prompt, rng) or rejected
            out.append({"prompt": prompt, "chosen": rule.respond(prompt, rng, True), "rejected": rejected})
        return out

    def _off_task(self, prompt: str, rng: random.Random) -> str | None:
        """A response to another rule's prompt that happens not to satisfy `prompt` (None if none is found)."""
        for _ in range(10):
            other = rng.choice(list(RULES.values()))
            response = other.respond(other.prompt(rng), rng, rng.random() < 0.5)
            if not self.satisfied(prompt, response):
                return response
        return None

    def satisfied(self, prompt: str, response: str) -> bool:
        """The ground truth: does `response` do what `prompt` asks?"""
        return RULES[rule_of(prompt)].satisfied(prompt, response)

    @staticmethod
    def alphabet() -> str:
        """Every character prompts and responses can hold: a char tokenizer trained on it is the same every run."""
        return "".join(WORDS) + LETTERS + "0123456789+: " + "saylensum"


def rule_of(prompt: str) -> str:
    """The rule a prompt asks for ('keyword', 'length' or 'sum')."""
    return {"say": "keyword", "len": "length", "sum": "sum"}[prompt.split(" ", 1)[0]]


def satisfaction_by_rule(prompts: Sequence[str], responses: Sequence[str], task: RuleTask) -> dict[str, float]:
    """Fraction of responses that satisfy their prompt's rule, overall and per rule."""
    hits: dict[str, list[bool]] = {}
    for prompt, response in zip(prompts, responses, strict=True):
        hits.setdefault(rule_of(prompt), []).append(task.satisfied(prompt, response))
    flat = [h for group in hits.values() for h in group]
    out = {"all": sum(flat) / max(len(flat), 1)}
    out.update({name: sum(group) / len(group) for name, group in sorted(hits.items())})
    return out
