"""The Shapes dataset: pixels, language, splits, tokenizer and batch sources."""

import dataclasses
import re
from collections import Counter

import numpy as np
import pytest
import torch

from formers.data.shapes import SPLITS, Shapes, ShapesConfig, attribute_set_id, default_heldout, main
from formers.data.shapes_batches import (
    CaptionBatches,
    MatchingBatches,
    QuestionBatches,
    altered,
    caption_matches,
    encode_texts,
)
from formers.data.shapes_draw import BACKGROUND_MAX, COLOURS, GRID, POSITIONS, SHAPES, ShapeObject, place, render
from formers.data.shapes_text import (
    ANSWERS,
    ATTRIBUTES,
    COUNT_WORDS,
    PLACE_WORDS,
    PLURALS,
    QUESTION_TYPES,
    SHAPE_WORDS,
    WHERE,
    Caption,
    HardNegative,
    make_caption,
    shapes_tokenizer,
    shapes_vocabulary,
)
from formers.data.tokenizers import WORD_SPECIALS, Tokenizer, TokenizerConfig, train_tokenizer, word_tokenizer
from formers.errors import CheckpointError, ConfigError, DataError

SYNONYM = {w: s for s, words in SHAPE_WORDS.items() for w in words}  # "disc" -> "circle"
PHRASE = {p: pos for pos, phrases in WHERE.items() for p in phrases}  # "in the upper left" -> "top left"
PLACE = {p: pos for pos, names in PLACE_WORDS.items() for p in names}  # "upper left" -> "top left"


@pytest.fixture(scope="module")
def train():
    return Shapes(ShapesConfig(background="mixed"), split="train", seed=3)


@pytest.fixture(scope="module")
def train_samples(train):
    return train.samples(range(150))


@pytest.fixture(scope="module")
def tok():
    return shapes_tokenizer()


def named_pairs(text: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs a text names: a colour followed, maybe after a generic noun, by a shape word."""
    words = re.findall(r"[a-z]+", text)
    return [(w, SYNONYM[n]) for w, n in zip(words, words[1:], strict=False) if w in COLOURS and n in SYNONYM]


# ---- pixels ---------------------------------------------------------------------------------------------


def test_same_seed_same_samples_other_seed_other_images(train_samples):
    again = Shapes(ShapesConfig(background="mixed"), split="train", seed=3).samples(range(20))
    for a, b in zip(train_samples, again, strict=False):
        assert torch.equal(a.image, b.image) and a.objects == b.objects and a.text == b.text
    other = Shapes(ShapesConfig(background="mixed"), split="train", seed=4).samples(range(20))
    assert sum(torch.equal(a.image, b.image) for a, b in zip(train_samples, other, strict=False)) == 0


def test_a_sample_is_a_pure_function_of_its_index(train, train_samples):
    # any slice, in any order, alone or in a batch, gives the same sample
    for i, s in zip((97, 4, 60), train.samples([97, 4, 60]), strict=True):
        ref = train_samples[i]
        assert torch.equal(s.image, ref.image) and torch.equal(s.masks, ref.masks) and s.text == ref.text
    assert torch.equal(train.sample(13).boxes, train_samples[13].boxes)
    # splits are different streams
    test = Shapes(ShapesConfig(background="mixed"), split="test", seed=3).samples(range(20))
    assert sum(torch.equal(a.image, b.image) for a, b in zip(train_samples, test, strict=False)) == 0


def test_images_shape_and_object_counts(train_samples):
    counts = Counter(len(s.objects) for s in train_samples)
    assert set(counts) == {1, 2, 3} and all(c > 25 for c in counts.values())  # 150 draws of a uniform 1..3
    for s in train_samples:
        assert s.image.shape == (3, 32, 32) and s.image.dtype == torch.uint8
        assert s.masks.shape == (len(s.objects), 32, 32) and s.boxes.shape == (len(s.objects), 4)
        assert len({o.position for o in s.objects}) == len(s.objects)  # one object per cell
        assert len({(o.colour, o.shape) for o in s.objects}) == len(s.objects)  # a colour-shape pair is unique


def test_named_colour_is_rendered_inside_each_mask(train_samples):
    # hard edges (one sample per pixel): every mask pixel is exactly the palette colour, the rest background
    hard = Shapes(ShapesConfig(antialias=1, background="noise"), seed=3).samples(range(60))
    for s in hard:
        for o, m in zip(s.objects, s.masks, strict=True):
            assert torch.equal(s.image[:, m].T.unique(dim=0), torch.tensor([COLOURS[o.colour]], dtype=torch.uint8))
        assert int(s.image[:, ~s.masks.any(0)].max()) <= BACKGROUND_MAX
    # anti-aliased: each object has pixels of exactly its colour, and its mask's mean is nearest that colour
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float)  # (8, 3)
    for s in train_samples:
        for o, m in zip(s.objects, s.masks, strict=True):
            pixels = s.image[:, m].T  # (n, 3)
            assert (pixels == torch.tensor(COLOURS[o.colour], dtype=torch.uint8)).all(1).any(), o
            nearest = (palette - pixels.float().mean(0)).abs().sum(1).argmin()
            assert list(COLOURS)[nearest] == o.colour, o


def test_masks_and_boxes_agree_with_the_pixels(train_samples):
    cell = 32 / GRID
    for s in train_samples:
        assert not (s.masks.sum(0) > 1).any()  # objects never overlap
        for o, m, (x0, y0, x1, y1) in zip(s.objects, s.masks, s.boxes.tolist(), strict=True):
            ys, xs = m.nonzero(as_tuple=True)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # tight, end exclusive
            row, col = divmod(POSITIONS.index(o.position), GRID)  # the mask lies inside the named cell
            assert col * cell <= x0 and x1 <= (col + 1) * cell + 1 and row * cell <= y0 and y1 <= (row + 1) * cell + 1
        # away from every object (one pixel beyond its mask, which anti-aliased edges may tint) lies background
        near = torch.nn.functional.max_pool2d(s.masks.any(0)[None, None].float(), 3, 1, 1)[0, 0].bool()
        assert int(s.image[:, ~near].max()) <= BACKGROUND_MAX
        if s.background == "plain":
            assert s.image[:, ~near].T.unique(dim=0).shape[0] == 1


def test_every_shape_fills_its_box_like_itself():
    # each outline covers its own number of pixels (so the shapes differ), and large ones ~2x small ones
    fills = {}
    for name in SHAPES:
        objs = tuple(ShapeObject(name, "red", size, pos, *place(48, pos, size, (0, 0)))
                     for size, pos in (("small", "left"), ("large", "right")))
        _, masks, _ = render([objs], np.zeros((1, 3, 48, 48)), antialias=4)
        small, large = masks.sum((1, 2)).tolist()
        assert 1.7 < large / small < 3.0, name  # radius ratio 0.44 / 0.30: area ratio 2.15, up to where the
        # outline crosses pixel centres (the small diamond loses its four tips: 40 pixels for an area of 46)
        fills[name] = large
    assert len(set(fills.values())) == len(SHAPES)


# ---- language -------------------------------------------------------------------------------------------


def test_canonical_caption_is_exact():
    objs = tuple(ShapeObject(s, c, z, p, *place(32, p, z, (0, 0))) for s, c, z, p in
                 (("circle", "red", "small", "top left"), ("square", "blue", "large", "center")))
    assert make_caption(objs, None).text == "a small red circle at the top left and a large blue square in the center"


def test_captions_mention_exactly_the_objects_present(train_samples):
    templates = Counter()
    for s in train_samples:
        truth = Counter((o.colour, o.shape) for o in s.objects)
        for c in s.text.captions:
            templates[c.template] += 1
            assert Counter(named_pairs(c.text)) == truth, c.text
            words = c.text.replace(",", " ").replace(".", " ")
            if "position" in c.mentions:
                phrases = PLACE if c.template == "terse" else PHRASE  # "red disc, upper left" names the cell alone
                named = [pos for p, pos in phrases.items() if f" {p} " in f" {words} "]
                assert set(named) >= {o.position for o in s.objects}, c.text
            sizes = re.findall(r"\b(small|little|tiny|large|big)\b", c.text)
            assert len(sizes) == (len(s.objects) if "size" in c.mentions else 0), c.text
        assert s.text.captions[0].mentions == ATTRIBUTES  # the canonical caption says everything
    assert len(templates) == 7  # every template occurs


def test_hard_negatives_change_one_attribute_and_are_false(train, train_samples):
    changed = Counter()
    for s in train_samples:
        for n in s.text.negatives:
            caption = s.text.captions[n.caption]
            assert n.attribute in caption.mentions and n.old != n.new and n.text != caption.text
            assert getattr(s.objects[n.object], n.attribute) == n.old
            altered = list(s.objects)
            altered[n.object] = dataclasses.replace(altered[n.object], **{n.attribute: n.new})
            assert caption.render(altered) == n.text  # the caption, with exactly that one change
            fake = dataclasses.replace(caption, text=n.text)
            assert not caption_matches([s.objects, altered], [caption, fake])[0, 1]  # false of the image
            assert not set(named_pairs(n.text)) & train.config.heldout_pairs  # training text never names one
            changed[n.attribute] += 1
    assert set(changed) == set(ATTRIBUTES)


def place_in(text: str) -> str | None:
    """The cell the longest position phrase in `text` names ("at the top" is inside "at the top left")."""
    found = [p for p in PHRASE if re.search(rf"\b{p}\b", text)]
    return PHRASE[max(found, key=len)] if found else None


def answer_of(question: str, objects) -> str:
    """An independent reading of the question forms: the answer from the objects alone."""
    q = question.rstrip("?")
    pairs = named_pairs(q)
    if q.startswith("how many"):
        what = re.match(r"how many (.+?) are", q).group(1).split()
        if what in (["shapes"], ["objects"]):
            return COUNT_WORDS[len(objects)]
        singular = {v: k for k, v in PLURALS.items()}
        return COUNT_WORDS[sum(what[0] in (o.colour, o.size) or singular.get(what[0]) == o.shape for o in objects)]
    if q.startswith("is there"):
        return "yes" if pairs[0] in {(o.colour, o.shape) for o in objects} else "no"
    if q.startswith("is the") and not q.endswith("small or large"):  # is the red circle <where>
        return "yes" if next(o for o in objects if (o.colour, o.shape) == pairs[0]).position == place_in(q) else "no"
    words = re.findall(r"[a-z]+", q)
    if pairs:
        target = [o for o in objects if (o.colour, o.shape) == pairs[0]]
    elif any(w in SYNONYM for w in words):
        target = [o for o in objects if o.shape in {SYNONYM[w] for w in words if w in SYNONYM}]
    elif any(w in COLOURS for w in words):
        target = [o for o in objects if o.colour in words]
    else:
        target = [o for o in objects if o.position == place_in(q)]
    assert len(target) == 1, (question, objects)  # every reference names exactly one object
    if q.startswith(("where", "in which")):
        return target[0].position
    if q.startswith(("what colour", "what color")):
        return target[0].colour
    if q.startswith("what shape"):
        return target[0].shape
    assert q.startswith(("what size", "how big")) or q.endswith("small or large"), question
    return target[0].size


def test_answers_are_right(train_samples):
    for s in train_samples:
        assert [q.kind for q in s.text.questions] == list(QUESTION_TYPES)
        for q in s.text.questions:
            assert q.answer in ANSWERS
            assert answer_of(q.text, s.objects) == q.answer, (q, s.objects)
        assert s.text.questions[QUESTION_TYPES.index("count")].answer in COUNT_WORDS
    yes = sum(q.answer == "yes" for s in train_samples for q in s.text.questions)
    assert 0.35 < yes / len(train_samples) < 0.65  # yes/no questions are about balanced


# ---- splits ---------------------------------------------------------------------------------------------


def test_heldout_pairs_never_in_train_or_test_and_in_every_heldout_image():
    config = ShapesConfig()
    heldout = config.heldout_pairs
    assert len(heldout) == 8 and {c for c, _ in heldout} == set(COLOURS) and {s for _, s in heldout} == set(SHAPES)
    for split in ("train", "test"):
        scenes = [Shapes(config, split=split, seed=1).scene(i)[0] for i in range(1500)]
        pairs = {(o.colour, o.shape) for objs in scenes for o in objs}
        assert not pairs & heldout
        assert pairs == set(config.all_pairs) - heldout  # every training pair occurs
    scenes = [Shapes(config, split="heldout", seed=1).scene(i)[0] for i in range(500)]
    assert all({(o.colour, o.shape) for o in objs} & heldout for objs in scenes)
    assert {(o.colour, o.shape) for objs in scenes for o in objs} >= heldout


def test_training_text_never_names_a_heldout_pair(train_samples, train):
    for s in train_samples:
        texts = [c.text for c in s.text.captions] + [n.text for n in s.text.negatives] + \
                [q.text for q in s.text.questions]
        assert not {p for t in texts for p in named_pairs(t)} & train.config.heldout_pairs


def test_default_heldout_and_custom_pairs():
    assert default_heldout(["red", "blue"], ["circle", "square", "star"]) == ["red star", "blue circle"]
    assert default_heldout(["red", "blue"], ["circle"]) == []  # one shape: nothing to recombine
    for n_colours, n_shapes in ((8, 8), (8, 2), (3, 8), (6, 6), (8, 5)):  # the default always leaves a valid config
        ShapesConfig(colours=list(COLOURS)[:n_colours], shapes=list(SHAPES)[:n_shapes])
    config = ShapesConfig(shapes=["circle", "square"], colours=["red", "blue"], heldout=["red circle"])
    assert config.heldout_pairs == {("red", "circle")} and len(config.train_pairs) == 3
    objs = Shapes(config, split="heldout").scene(0)[0]
    assert ("red", "circle") in {(o.colour, o.shape) for o in objs}


# ---- tokenizer ------------------------------------------------------------------------------------------


def test_tokenizer_round_trips_every_text_without_unknown_words(tok, train_samples, tmp_path):
    many = ShapesConfig(min_objects=7, max_objects=9, image_size=48)
    samples = train_samples + Shapes(many, split="heldout").samples(range(40))
    texts = [t for s in samples for t in (*s.captions, *(n.text for n in s.text.negatives),
                                          *(q.text for q in s.text.questions), *(q.answer for q in s.text.questions))]
    ids = [tok.encode(t) for t in texts]
    assert tok.unk_id not in {i for row in ids for i in row}
    assert [tok.decode(row) for row in ids] == texts
    assert len({i for row in ids for i in row}) == len(shapes_vocabulary())  # every word is used
    tok.save(tmp_path)
    again = Tokenizer.load(tmp_path)
    assert [again.encode(t) for t in texts[:50]] == ids[:50] and again.vocab_size == tok.vocab_size
    assert [tok.token_to_id(t) for t in WORD_SPECIALS] == list(range(7))
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.bos_id, tok.eos_id) == tuple(range(7))


def test_word_tokenizer_kind_and_unknown_words(tok):
    trained = train_tokenizer(TokenizerConfig(kind="word"), ["A red disc, upper left.", "what colour is it?"])
    assert trained.decode(trained.encode("a red disc, upper left.")) == "a red disc, upper left."
    assert trained.vocab_size == 7 + 12  # a red disc , upper left . what colour is it ?
    ids = tok.encode("a mauve circle [MASK]")  # unknown words and typed specials are [UNK], not the special
    assert ids.count(tok.unk_id) == 4 and tok.mask_id not in ids
    with pytest.raises(DataError, match="lower-case"):
        word_tokenizer(["Red"])


# ---- batch sources --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [CaptionBatches, QuestionBatches, MatchingBatches])
@pytest.mark.parametrize("n_images", [40, None])
def test_batch_sources_resume_and_shard_by_rank(cls, n_images, train, tok):
    kwargs = dict(batch_size=8, seed=5, n_images=n_images)
    whole = cls(train, tok, **kwargs)
    batches = [whole.next_batch() for _ in range(4)]  # 4 * 8 > 40: crosses an epoch
    resumed = cls(train, tok, **kwargs)
    resumed.load_state_dict(whole.state_dict() | {"step": 2})
    again = resumed.next_batch()
    assert all(torch.equal(again[k], v) for k, v in batches[2].items())
    half = dict(kwargs, batch_size=4)
    ranks = [cls(train, tok, rank=r, world_size=2, **half) for r in (0, 1)]
    for step in range(3):
        parts = [r.next_batch() for r in ranks]
        for key in ("pixel_values", "image_ids", "caption_ids", "answers", "negative_attributes"):
            if key in batches[step]:
                assert torch.equal(torch.cat([p[key] for p in parts]), batches[step][key]), key
        ids = torch.cat([p["input_ids"][:, : p["attention_mask"].sum(1).max()] for p in parts[:1]])
        assert torch.equal(ids, batches[step]["input_ids"][:4, : ids.shape[1]])
    if n_images:
        assert int(torch.cat([b["image_ids"] for b in batches]).max()) < n_images


def test_caption_batches_keys_and_matches(train, tok):
    source = CaptionBatches(train, tok, batch_size=12, seed=0, n_images=30, captions_per_image=3)
    b = source.next_batch()
    assert b["pixel_values"].shape == (12, 3, 32, 32) and b["pixel_values"].dtype == torch.float32
    assert torch.equal(b["image_ids"], b["image_ids"][::3].repeat_interleave(3))
    assert all(len(set(b["caption_ids"][i : i + 3].tolist())) == 3 for i in range(0, 12, 3))
    same_image = b["image_ids"][:, None] == b["image_ids"][None, :]
    assert (b["matches"] >= same_image).all() and b["matches"].diagonal().all()
    assert (b["input_ids"][:, 0] == tok.cls_id).all()
    last = b["attention_mask"].sum(1) - 1
    assert (b["input_ids"][torch.arange(12), last] == tok.sep_id).all()
    assert (b["input_ids"][b["attention_mask"] == 0] == tok.pad_id).all()


def test_caption_batches_with_shape_negatives(train, tok):
    source = CaptionBatches(train, tok, batch_size=16, seed=0, n_images=40, hard_negatives=["shape"])
    b = source.next_batch()
    shape_words = {w for words in SHAPE_WORDS.values() for w in words} | set(PLURALS.values())
    assert b["negative_input_ids"].shape == b["input_ids"].shape == b["negative_attention_mask"].shape
    assert b["negative_matches"].shape == (16, 16) and not b["negative_matches"].diagonal().any()
    def words(ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        return re.findall(r"\w+", tok.decode(ids[mask.bool()].tolist()))

    for row in range(16):
        said = words(b["input_ids"][row], b["attention_mask"][row])
        lie = words(b["negative_input_ids"][row], b["negative_attention_mask"][row])
        changed = [(w, v) for w, v in zip(said, lie, strict=True) if w != v]  # shape words are one word each
        assert len(changed) == 1 and set(changed[0]) <= shape_words, (said, lie)
    # a negative describing another image's objects is true of it, and is marked
    i, j = 0, 1
    red_a = (ShapeObject("circle", "red", "small", "top left", 0, 0, 1),)
    red_b = (ShapeObject("square", "red", "small", "top left", 0, 0, 1),)
    full = Caption("a small red circle at the top left", ATTRIBUTES, "list", (0,), None)
    lie = HardNegative("a small red square at the top left", 0, 0, "shape", "circle", "square")
    fooled = caption_matches([red_a, red_b], [full, full], described=[altered(red_a, lie), red_b])
    assert fooled[j, i] and not fooled[i, i]


def test_matches_count_captions_that_leave_out_the_difference():
    a = (ShapeObject("circle", "red", "small", "top left", 0, 0, 1),)
    b = (ShapeObject("circle", "red", "large", "center", 0, 0, 1),)
    loose = Caption("a picture of a red circle", ("colour", "shape"), "image of", (0,), 1)
    full = Caption("a small red circle at the top left", ATTRIBUTES, "list", (0,), None)
    m = caption_matches([a, b, a], [full, loose, loose])
    # rows: images; columns: captions. The loose caption fits both images; the full one only its own.
    assert m.tolist() == [[True, True, True], [False, True, True], [True, True, True]]
    assert attribute_set_id(a) != attribute_set_id(b) and attribute_set_id(a) == attribute_set_id(a[::-1])


def test_question_and_matching_batches(train, tok):
    q = QuestionBatches(train, tok, batch_size=16, seed=0, question_types=["count", "yes/no"]).next_batch()
    assert set(q["question_types"].tolist()) <= {QUESTION_TYPES.index("count"), QUESTION_TYPES.index("yes/no")}
    assert all(ANSWERS[a] in (*COUNT_WORDS, "yes", "no") for a in q["answers"].tolist())
    m = MatchingBatches(train, tok, batch_size=16, seed=0, n_images=20, wrap=("[BOS]", "[EOS]")).next_batch()
    assert m["input_ids"].shape == m["negative_input_ids"].shape and (m["input_ids"][:, 0] == tok.bos_id).all()
    assert not torch.equal(m["input_ids"], m["negative_input_ids"])
    assert set(m["negative_attributes"].tolist()) <= set(range(len(ATTRIBUTES)))


def test_fixed_batches_are_fixed_and_cover_the_first_n(tok):
    heldout = Shapes(split="heldout", seed=0)
    source = CaptionBatches(heldout, tok, batch_size=32, seed=0)
    first, again = source.fixed_batches(100), source.fixed_batches(100)
    source.next_batch()
    later = source.fixed_batches(100)
    assert [len(b["image_ids"]) for b in first] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([b["image_ids"] for b in first]), torch.arange(100))
    for x, y, z in zip(first, again, later, strict=True):
        assert all(torch.equal(x[k], y[k]) and torch.equal(x[k], z[k]) for k in x)
    padded = encode_texts(tok, ["a red circle"], max_len=10)
    assert padded[0].shape == (1, 10) and padded[1].tolist() == [[1] * 5 + [0] * 5]


def test_stats_normalise_training_pixels(train):
    x = train.normalize(train.render(range(300)).images)
    # 300 of the 512 images the stats came from: near mean 0, std 1
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
    assert Shapes(train.config, split="heldout", seed=3).stats == train.stats  # every split: training stats


def test_image_set_labels():
    single = Shapes(ShapesConfig(max_objects=1), seed=0)
    images = single.image_set(20, "shape")
    for i in range(20):
        assert images.classes[images.labels[i]] == single.scene(i)[0][0].shape
    counts = Shapes(seed=0).image_set(10, "count")
    truth = [COUNT_WORDS[len(Shapes(seed=0).scene(i)[0])] for i in range(10)]
    assert [counts.classes[c] for c in counts.labels] == truth
    with pytest.raises(DataError, match="max_objects=1"):
        Shapes().image_set(5, "colour")


# ---- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, match", [
    ({"image_size": 16}, "image_size=16"),
    ({"max_objects": 10}, "one object per grid cell"),
    ({"min_objects": 3, "max_objects": 2}, "max_objects"),
    ({"shapes": ["circle", "hexagon"]}, "shapes"),
    ({"colours": ["red", "mauve"]}, "colours"),
    ({"colours": []}, "colours"),
    ({"heldout": ["mauve circle"]}, "heldout"),
    ({"heldout": ["red circle", "blue circle"], "colours": ["red", "blue"]}, "never be trained"),
    ({"colours": ["red"], "shapes": ["circle", "square"], "max_objects": 3}, "colours x shapes"),
    ({"background": "stripes"}, "background"),
    ({"antialias": 0}, "antialias"),
])
def test_bad_configs_are_refused(fields, match):
    with pytest.raises(ConfigError, match=match):
        ShapesConfig(**fields)


def test_bad_requests_are_refused(train, tok):
    with pytest.raises(DataError, match="heldout is empty"):
        Shapes(ShapesConfig(heldout=[]), split="heldout")
    with pytest.raises(DataError, match="split='val'"):
        Shapes(split="val")
    with pytest.raises(DataError, match="non-negative"):
        train.sample(-1)
    with pytest.raises(DataError, match="multiple of 2"):
        CaptionBatches(train, tok, batch_size=5, seed=0, captions_per_image=2)
    with pytest.raises(DataError, match="captions_per_image"):
        CaptionBatches(train, tok, batch_size=12, seed=0, captions_per_image=6)
    with pytest.raises(DataError, match="not attributes"):
        CaptionBatches(train, tok, batch_size=12, seed=0, hard_negatives=["mood"])
    with pytest.raises(DataError, match="question_types"):
        QuestionBatches(train, tok, batch_size=4, seed=0, question_types=["colour", "mood"])
    with pytest.raises(DataError, match="max_len"):
        encode_texts(tok, ["a red circle at the top left"], max_len=4)
    with pytest.raises(DataError, match="wrap"):
        encode_texts(train_tokenizer(TokenizerConfig(kind="char"), "abc"), ["abc"])
    with pytest.raises(DataError, match="rank"):
        MatchingBatches(train, tok, batch_size=4, seed=0, rank=2, world_size=2)
    with pytest.raises(CheckpointError, match="step"):
        MatchingBatches(train, tok, batch_size=4, seed=0).load_state_dict({"step": -1})


def test_grid_figure_is_written(tmp_path, capsys):
    main(["--grid", str(tmp_path / "grid.png"), "--n", "4", "--split", "heldout",
          "--config", '{"background": "noise"}'])
    assert (tmp_path / "grid.png").stat().st_size > 10_000 and "grid.png" in capsys.readouterr().out


def test_splits_are_named():
    assert SPLITS == ("train", "test", "heldout")


def test_texture_upsampling_is_bilinear_and_boxes_of_empty_masks():
    from formers.data.shapes_draw import _bilinear, boxes_of

    coarse = torch.rand(1, 3, 5, 5, dtype=torch.float64)
    ref = torch.nn.functional.interpolate(coarse, size=(37, 37), mode="bilinear", align_corners=False)[0]
    up = torch.from_numpy(_bilinear(5, 37))
    torch.testing.assert_close(torch.einsum("hi,cij,wj->chw", up, coarse[0], up), ref)  # float64: ~1e-15
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[1, 2:4, 1:5] = True
    assert boxes_of(masks).tolist() == [[0, 0, 0, 0], [1, 2, 5, 4]]
