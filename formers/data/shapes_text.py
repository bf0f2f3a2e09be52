"""The Shapes language: captions, one-attribute hard negatives, questions and answers, and its vocabulary.

Every caption names *every* object of its image, always by colour and shape, and by size and by
position when its template says so (`Caption.mentions`). So a caption is true of an image exactly when
the image holds the same number of objects and they agree on the mentioned attributes; a caption
that leaves out positions is true of every image with the same objects anywhere.

A caption is drawn as a *plan* (template, object order, whether sizes are said, a seed for the
synonyms) and rendered from the objects. A hard negative renders the same plan after changing one
mentioned attribute of one object, so it reads like the caption with one word or phrase swapped.

Text is lower case with single spaces, punctuation attached to the word before it, so that the word
tokenizer (`shapes_tokenizer`) decodes it back exactly.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Collection, Sequence

from formers.data.shapes_draw import COLOURS, POSITIONS, SHAPES, SIZES, ShapeObject
from formers.data.tokenizers import Tokenizer, word_tokenizer

ATTRIBUTES = ("colour", "shape", "size", "position")
QUESTION_TYPES = ("colour", "shape", "size", "count", "position", "yes/no")
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Every answer any question can have, fixed whatever the config's colours and shapes: a classifier head
# over ANSWERS fits every Shapes config. Answers are canonical names (never a synonym).
ANSWERS = ("no", "yes", *COUNT_WORDS, *COLOURS, *SHAPES, *SIZES, *POSITIONS)

SHAPE_WORDS = {  # the canonical name first; the others are synonyms captions also use
    "circle": ("circle", "disc"), "square": ("square", "box"), "triangle": ("triangle",),
    "cross": ("cross", "plus"), "star": ("star",), "diamond": ("diamond", "rhombus"),
    "ring": ("ring", "donut"), "heart": ("heart",),
}
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses", "star": "stars",
           "diamond": "diamonds", "ring": "rings", "heart": "hearts"}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
PLACE_WORDS = {  # what a cell is called; the canonical name first
    "top left": ("top left", "upper left"), "top": ("top", "top middle"), "top right": ("top right", "upper right"),
    "left": ("left", "middle left"), "center": ("center", "middle"), "right": ("right", "middle right"),
    "bottom left": ("bottom left", "lower left"), "bottom": ("bottom", "bottom middle"),
    "bottom right": ("bottom right", "lower right"),
}


def _where_phrases(position: str) -> tuple[str, ...]:
    """Prepositional phrases for a cell, the canonical one first: "at the top left", "in the middle"."""
    if position == "center":
        return ("in the center", "in the middle", "at the center")
    if " " in position:  # a corner
        v, h = position.split()
        vv = {"top": "upper", "bottom": "lower"}[v]
        return (f"at the {v} {h}", f"in the {v} {h} corner", f"in the {vv} {h}", f"in the {vv} {h} corner")
    if position in ("top", "bottom"):
        return (f"at the {position}", f"at the {position} middle", f"in the {position} middle",
                f"along the {position} edge")
    return (f"on the {position}", f"on the {position} side", f"in the middle {position}")


WHERE = {p: _where_phrases(p) for p in POSITIONS}
GENERIC = ("shape", "object")
IMAGE_OF = ("an image of", "a picture of", "a drawing of")
CAPTION_WORDS = "there is the shape shapes a an and , ."  # the templates' own words
COLOUR_FORMS = ("what colour is {}?", "what color is {}?")
SHAPE_FORMS = ("what shape is {}?",)
SIZE_FORMS = ("what size is {}?", "is {} small or large?", "how big is {}?")
COUNT_FORMS = ("how many shapes are there?", "how many objects are there?", "how many shapes are in the image?",
               "how many {} are there?")
POSITION_FORMS = ("where is {}?", "in which part of the image is {}?")
YES_NO_FORMS = ("is there {}?", "is {} {}?")


def pick(options: Sequence[str], rng: random.Random | None) -> str:
    """One of `options`: the first (canonical) when rng is None. Always one draw whatever len(options),
    so a plan re-rendered with other objects keeps the same choices for everything else."""
    return options[0] if rng is None else options[rng.randrange(1 << 30) % len(options)]


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _join(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def where(position: str, rng: random.Random | None) -> str:
    """A prepositional phrase for a cell: "at the top left", "in the upper left corner", "in the middle"."""
    return pick(WHERE[position], rng)


def noun(o: ShapeObject, size: bool, rng: random.Random | None) -> str:
    """"small red circle", "red disc" (no article)."""
    words = [pick(SIZE_WORDS[o.size], rng)] if size else []
    return " ".join([*words, o.colour, pick(SHAPE_WORDS[o.shape], rng)])


# Caption templates: (objects in caption order, say sizes, rng) -> text. Those in WITH_POSITIONS say
# where every object is.
TEMPLATES: dict[str, Callable[[list[ShapeObject], bool, random.Random | None], str]] = {
    "list": lambda objs, s, r: _join([f"{_article(noun(o, s, r))} {where(o.position, r)}" for o in objs]),
    "there is": lambda objs, s, r: "there is " + _join([f"{_article(noun(o, s, r))} {where(o.position, r)}"
                                                        for o in objs]),
    "terse": lambda objs, s, r: ". ".join(f"{noun(o, s, r)}, {pick(PLACE_WORDS[o.position], r)}" for o in objs),
    "the is": lambda objs, s, r: _join([f"the {noun(o, s, r)} is {where(o.position, r)}" for o in objs]),
    "where first": lambda objs, s, r: _join([f"{where(o.position, r)} is {_article(noun(o, s, r))}" for o in objs]),
    "count": lambda objs, s, r: (f"{COUNT_WORDS[len(objs)]} {'shape' if len(objs) == 1 else 'shapes'}, "
                                 + _join([_article(noun(o, s, r)) for o in objs])),
    "image of": lambda objs, s, r: f"{pick(IMAGE_OF, r)} " + _join([_article(noun(o, s, r)) for o in objs]),
}
WITH_POSITIONS = ("list", "there is", "terse", "the is", "where first")


@dataclasses.dataclass(frozen=True)
class Caption:
    text: str
    mentions: tuple[str, ...]  # the ATTRIBUTES it states for every object (colour and shape always)
    template: str
    order: tuple[int, ...]  # the objects (indices into the sample's objects) in the order it names them
    seed: int | None  # of its synonym choices; None = the canonical words

    def render(self, objects: Sequence[ShapeObject]) -> str:
        rng = None if self.seed is None else random.Random(self.seed)
        return TEMPLATES[self.template]([objects[i] for i in self.order], "size" in self.mentions, rng)


@dataclasses.dataclass(frozen=True)
class HardNegative:
    """A caption with exactly one attribute of one object changed: false of the image."""

    text: str
    caption: int  # index of the caption it alters
    object: int  # index of the altered object in the sample's objects
    attribute: str  # one of ATTRIBUTES
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Question:
    text: str
    answer: str  # one of ANSWERS
    kind: str  # one of QUESTION_TYPES


def make_caption(objects: Sequence[ShapeObject], rng: random.Random | None) -> Caption:
    """The canonical caption when rng is None (every attribute, reading order, first synonyms:
    "a small red circle at the top left and a large blue square in the center"); else a random one."""
    if rng is None:
        order = tuple(sorted(range(len(objects)), key=lambda i: POSITIONS.index(objects[i].position)))
        plan = Caption("", ATTRIBUTES, "list", order, None)
    else:
        template = rng.choice(sorted(TEMPLATES))
        mentions = ("colour", "shape") + (("size",) if rng.random() < 0.5 else ())
        mentions += ("position",) if template in WITH_POSITIONS else ()
        order = list(range(len(objects)))
        rng.shuffle(order)
        plan = Caption("", mentions, template, tuple(order), rng.randrange(1 << 62))
    return dataclasses.replace(plan, text=plan.render(objects))


@dataclasses.dataclass(frozen=True)
class Language:
    """What a split may say: the config's colours and shapes, and which colour-shape pairs its text may
    name (a training split never names a held-out pair, not even in a negative or a "no" question)."""

    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    allowed: frozenset[tuple[str, str]]  # (colour, shape)


def hard_negative(objects: Sequence[ShapeObject], caption: Caption, index: int, lang: Language,
                  rng: random.Random, attributes: Collection[str] | None = None) -> HardNegative:
    """Change one mentioned attribute of one object to another value and re-render the caption.
    `attributes` limits which may change (any the caption mentions when it mentions none of them).

    The result is false of the image: the caption names every object, so one changed attribute makes
    the named objects differ from the image's as a multiset. Values that name a pair the split may not
    mention are never used; values that would duplicate another object are avoided when others exist."""
    k = rng.randrange(len(objects))
    o = objects[k]
    others = {(p.colour, p.shape) for i, p in enumerate(objects) if i != k}
    used = {p.position for p in objects}

    def options(attribute: str) -> tuple[list[str], list[str]]:  # (preferred, acceptable)
        if attribute == "colour":
            ok = [c for c in lang.colours if c != o.colour and (c, o.shape) in lang.allowed]
            return [c for c in ok if (c, o.shape) not in others], ok
        if attribute == "shape":
            ok = [s for s in lang.shapes if s != o.shape and (o.colour, s) in lang.allowed]
            return [s for s in ok if (o.colour, s) not in others], ok
        if attribute == "size":
            return [s for s in SIZES if s != o.size], []
        free = [p for p in POSITIONS if p != o.position]
        return [p for p in free if p not in used], free

    choices = [a for a in caption.mentions if any(options(a))]
    if attributes is not None:
        choices = [a for a in choices if a in attributes] or choices
    attribute = rng.choice(choices)
    preferred, acceptable = options(attribute)
    new = rng.choice(preferred or acceptable)
    changed = list(objects)
    changed[k] = dataclasses.replace(o, **{attribute: new})
    return HardNegative(caption.render(changed), index, k, attribute, getattr(o, attribute), new)


def _ref(o: ShapeObject, objects: Sequence[ShapeObject], rng: random.Random, by: tuple[str, ...],
         generic: tuple[str, ...] = GENERIC) -> str:
    """A phrase naming `o` unambiguously: by colour and shape (unique in a scene), by position, or by
    its colour or shape alone when no other object shares it; `by` lists the ways allowed."""
    ways = [w for w in by if w != "shape alone" or sum(p.shape == o.shape for p in objects) == 1]
    ways = [w for w in ways if w != "colour alone" or sum(p.colour == o.colour for p in objects) == 1]
    way = rng.choice(ways)
    if way == "pair":
        return f"the {noun(o, False, rng)}"
    if way == "shape alone":
        return f"the {pick(SHAPE_WORDS[o.shape], rng)}"
    if way == "colour alone":
        return f"the {o.colour} {pick(generic, rng)}"
    return f"the {pick(generic, rng)} {where(o.position, rng)}"


def ask_colour(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    o = rng.choice(objects)
    ref = _ref(o, objects, rng, ("position", "shape alone"))
    return Question(rng.choice(COLOUR_FORMS).format(ref), o.colour, "colour")


def ask_shape(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    o = rng.choice(objects)
    if rng.random() < 0.5:
        return Question(SHAPE_FORMS[0].format(where(o.position, rng)), o.shape, "shape")
    ref = _ref(o, objects, rng, ("position", "colour alone"), generic=("object",))  # not "the shape ..."
    return Question(SHAPE_FORMS[0].format(ref), o.shape, "shape")


def ask_size(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    o = rng.choice(objects)
    ref = _ref(o, objects, rng, ("pair", "position"))
    return Question(rng.choice(SIZE_FORMS).format(ref), o.size, "size")


def ask_count(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    by = rng.choice(("all", "colour", "shape", "size"))
    if by == "all":
        return Question(rng.choice(COUNT_FORMS[:3]), COUNT_WORDS[len(objects)], "count")
    present = [getattr(o, by) for o in objects]
    universe = {"colour": lang.colours, "shape": lang.shapes, "size": SIZES}[by]
    value = rng.choice(present) if rng.random() < 0.7 else rng.choice(universe)  # sometimes zero
    what = PLURALS[value] if by == "shape" else f"{value} shapes"
    return Question(COUNT_FORMS[3].format(what), COUNT_WORDS[present.count(value)], "count")


def ask_position(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    o = rng.choice(objects)
    ref = _ref(o, objects, rng, ("pair", "shape alone", "colour alone"))
    return Question(rng.choice(POSITION_FORMS).format(ref), o.position, "position")


def ask_yes_no(objects: list[ShapeObject], lang: Language, rng: random.Random) -> Question:
    """Half "yes" (a present object), half "no" (the same question about an absent one)."""
    o = rng.choice(objects)
    pairs = {(p.colour, p.shape) for p in objects}
    yes = rng.random() < 0.5
    if rng.random() < 0.5:  # does a colour-shape pair occur
        absent = sorted(lang.allowed - pairs)
        colour, shape = (o.colour, o.shape) if yes or not absent else rng.choice(absent)
        rng_words = random.Random(rng.randrange(1 << 62))
        text = YES_NO_FORMS[0].format(_article(colour + " " + pick(SHAPE_WORDS[shape], rng_words)))
        return Question(text, "yes" if (colour, shape) in pairs else "no", "yes/no")
    position = o.position if yes else rng.choice([p for p in POSITIONS if p != o.position])
    text = YES_NO_FORMS[1].format(f"the {noun(o, False, rng)}", where(position, rng))
    return Question(text, "yes" if yes else "no", "yes/no")


ASK = {"colour": ask_colour, "shape": ask_shape, "size": ask_size, "count": ask_count,
       "position": ask_position, "yes/no": ask_yes_no}


def make_questions(objects: Sequence[ShapeObject], lang: Language, rng: random.Random) -> list[Question]:
    """One question of each of QUESTION_TYPES, in that order."""
    return [ASK[kind](list(objects), lang, rng) for kind in QUESTION_TYPES]


def shapes_vocabulary() -> list[str]:
    """Every word any caption, negative, question or answer can hold (sorted); tests check it is complete."""
    tables = (SHAPE_WORDS, SIZE_WORDS, PLACE_WORDS, WHERE)
    texts = [*ANSWERS, *GENERIC, *IMAGE_OF, *PLURALS.values(), CAPTION_WORDS, *COLOUR_FORMS, *SHAPE_FORMS,
             *SIZE_FORMS, *COUNT_FORMS, *POSITION_FORMS, *YES_NO_FORMS,
             *(text for table in tables for texts in table.values() for text in texts)]
    return sorted({w for text in texts for w in re.findall(r"[a-z]+|[,?.!]", text)})


def shapes_tokenizer() -> Tokenizer:
    """The word tokenizer of the Shapes language: ids 0-6 are [PAD] [UNK] [CLS] [SEP] [MASK] [BOS] [EOS],
    then `shapes_vocabulary()` in sorted order. The same on every machine and for every config."""
    return word_tokenizer(shapes_vocabulary())
