"""Drawing the Shapes images: the palette, the shapes' outlines, backgrounds, anti-aliased rendering.

Every shape is an inside-test on coordinates (u, v) measured from the object's centre in units of its
radius (u right, v down) and fits the square [-1, 1]^2, so an object of radius R centred in its grid
cell stays inside that cell: objects never overlap. Edges are anti-aliased by supersampling: each
pixel's *coverage* is the fraction of its `antialias` x `antialias` sub-pixel samples inside the
shape, and the pixel becomes `coverage * colour + (1 - coverage) * background`. Pixels a shape covers
fully hold its palette colour exactly; an object's mask is `coverage >= 0.5`.

Rendering is vectorised: all objects of one shape in a batch of images are tested at once on small
patches around their centres, then pasted into (N, 3, H, W) canvases.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Saturated colours with one clear name each; backgrounds stay dark (every channel <= BACKGROUND_MAX),
# so each colour stands out of every background by at least 150 levels in its brightest channel.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (250, 140, 20),
    "yellow": (245, 225, 40),
    "green": (40, 180, 60),
    "cyan": (30, 210, 220),
    "blue": (40, 90, 235),
    "purple": (150, 60, 210),
    "white": (240, 240, 240),
}
SIZES = ("small", "large")
RADIUS = {"small": 0.30, "large": 0.44}  # object radius as a fraction of a grid cell's side (area ratio ~2.2)
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
GRID = 3  # POSITIONS are the cells of a GRID x GRID layout in reading order
MARGIN = 0.5  # pixels kept free between an object and its cell's border, so neighbours never touch
BACKGROUNDS = ("plain", "noise", "texture")
BACKGROUND_MAX = 90


def _polygon(points: list[tuple[float, float]]):
    """Inside-test of a polygon (even-odd rule, so it also serves non-convex outlines like the star)."""
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
        for x1, y1, x2, y2 in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1), strict=True):
            if y1 == y2:
                continue  # a horizontal edge never crosses a horizontal ray
            crosses = (y1 > v) != (y2 > v)
            out ^= crosses & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
        return out

    return inside


def _star_points(n: int = 5, inner: float = 0.47, shift: float = 0.095) -> list[tuple[float, float]]:
    # a point straight up; the star's lowest points sit at sin(54 deg) ~ 0.81, so shift it down to centre it
    angles = [-math.pi / 2 + k * math.pi / n for k in range(2 * n)]
    return [((1.0 if k % 2 == 0 else inner) * math.cos(a), (1.0 if k % 2 == 0 else inner) * math.sin(a) + shift)
            for k, a in enumerate(angles)]


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Taubin's heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans x in [-1.14, 1.14], y in [-1, 1.24] (y up);
    # scaled by 1.14 and shifted so that it fills [-1, 1]^2
    x, y = u * 1.14, -v * 1.12 + 0.12
    return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0


ARM = 0.34  # half-width of the cross's arms


SHAPES = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: (np.abs(u) <= 0.82) & (np.abs(v) <= 0.82),
    "triangle": _polygon([(0.0, -1.0), (1.0, 0.75), (-1.0, 0.75)]),
    "cross": lambda u, v: ((np.abs(u) <= ARM) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= ARM) & (np.abs(u) <= 1.0)),
    "star": _polygon(_star_points()),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.5**2),
    "heart": _heart,
}


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One object: its four attributes, and where it is drawn (pixels: x right, y down, (0, 0) the
    top-left corner of the top-left pixel)."""

    shape: str
    colour: str
    size: str
    position: str
    cx: float
    cy: float
    radius: float

    def attributes(self) -> tuple[str, str, str, str]:
        return (self.colour, self.shape, self.size, self.position)


def place(image_size: int, position: str, size: str, jitter: tuple[float, float]) -> tuple[float, float, float]:
    """(cx, cy, radius) of an object in grid cell `position`; `jitter` in [-1, 1]^2 moves it within the
    room its cell leaves (a small object moves more than a large one)."""
    cell = image_size / GRID
    row, col = divmod(POSITIONS.index(position), GRID)
    radius = RADIUS[size] * cell
    room = max(cell / 2 - radius - MARGIN, 0.0)
    return (col + 0.5) * cell + jitter[0] * room, (row + 0.5) * cell + jitter[1] * room, radius


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A dark (3, size, size) float background: one flat tint, the tint plus pixel noise, or a smooth
    random texture plus light noise. Every value lies in [0, BACKGROUND_MAX]."""
    tint = rng.uniform(5, 55, size=(3, 1, 1))
    if kind == "plain":
        out = np.broadcast_to(tint, (3, size, size))
    elif kind == "noise":
        out = tint + rng.normal(0, 14, size=(3, size, size))
    else:  # texture: a 5x5 random field blown up bilinearly, like soft blotches
        up = _bilinear(5, size)  # (size, 5)
        smooth = np.einsum("hi,cij,wj->chw", up, rng.uniform(0, 75, size=(3, 5, 5)), up)  # (3, size, size)
        out = smooth + rng.normal(0, 5, size=(3, size, size))
    return np.clip(out, 0, BACKGROUND_MAX)


def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation with pixel centres aligned (align_corners=False)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.minimum(np.floor(src).astype(int), n_in - 2)
    out = np.zeros((n_out, n_in))
    out[np.arange(n_out), low] = 1 - (src - low)
    out[np.arange(n_out), low + 1] = src - low
    return out


def coverage(objects: list[ShapeObject], image_size: int, antialias: int) -> np.ndarray:
    """(M, H, W) float32: the fraction of each pixel that each object covers."""
    out = np.zeros((len(objects), image_size, image_size), dtype=np.float32)
    if not objects:
        return out
    k = antialias
    patch = int(math.ceil(2 * max(o.radius for o in objects))) + 3  # pixels, enough for any object + rounding
    sub = (np.arange(patch * k) + 0.5) / k  # (P*k,) sample offsets inside the patch, in pixels
    by_shape: dict[str, list[int]] = {}
    for m, o in enumerate(objects):
        by_shape.setdefault(o.shape, []).append(m)
    for shape, members in by_shape.items():
        obj = [objects[m] for m in members]
        cx, cy, r = (np.array([getattr(o, a) for o in obj])[:, None] for a in ("cx", "cy", "radius"))  # (G, 1)
        ox, oy = np.floor(cx) - patch // 2, np.floor(cy) - patch // 2  # (G, 1) patch origins, whole pixels
        u = ((ox + sub - cx) / r)[:, None, :]  # (G, 1, P*k)
        v = ((oy + sub - cy) / r)[:, :, None]  # (G, P*k, 1)
        inside = SHAPES[shape](u, v)  # (G, P*k, P*k)
        cov = inside.reshape(len(obj), patch, k, patch, k).mean(axis=(2, 4))  # (G, P, P)
        rows = (oy.astype(int) + np.arange(patch))[:, :, None]  # (G, P, 1)
        cols = (ox.astype(int) + np.arange(patch))[:, None, :]  # (G, 1, P)
        keep = (rows >= 0) & (rows < image_size) & (cols >= 0) & (cols < image_size)  # (G, P, P)
        which = np.broadcast_to(np.array(members)[:, None, None], keep.shape)
        rows, cols = np.broadcast_to(rows, keep.shape), np.broadcast_to(cols, keep.shape)
        out[which[keep], rows[keep], cols[keep]] = cov[keep]
    return out


def render(scenes: list[tuple[ShapeObject, ...]], backgrounds: np.ndarray,
           antialias: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, H, W) from their objects and float backgrounds (N, 3, H, W); the objects'
    masks bool (M, H, W) and boxes (M, 4), image after image.

    numpy throughout: a data loader that shares its process with training would otherwise run many
    small torch ops on a thread pool the model is using (measured 10x slower on 2 busy cores)."""
    size = backgrounds.shape[-1]
    flat = [o for scene in scenes for o in scene]
    cov = coverage(flat, size, antialias)  # (M, H, W)
    rgb = np.array([COLOURS[o.colour] for o in flat], dtype=np.float32).reshape(-1, 3, 1, 1)  # (M, 3, 1, 1)
    counts = np.array([len(scene) for scene in scenes], dtype=int)
    first = np.cumsum(counts) - counts  # (N,) index in `flat` of each image's first object
    images = backgrounds.astype(np.float32)  # (N, 3, H, W), a copy
    for k in range(int(counts.max(initial=0))):  # the k-th object of every image at once: no image twice
        img = np.flatnonzero(counts > k)
        alpha = cov[first[img] + k][:, None]  # (n, 1, H, W)
        images[img] = alpha * rgb[first[img] + k] + (1.0 - alpha) * images[img]  # alpha 1: exactly the colour
    masks = cov >= 0.5
    return np.rint(images).clip(0, 255).astype(np.uint8), masks, boxes_of(masks)


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """Tight boxes (n, 4) int64 of bool masks (n, H, W) as (x0, y0, x1, y1): mask[y0:y1, x0:x1] holds
    every mask pixel (x1, y1 exclusive, like slicing); all zeros for an empty mask."""
    n, h, w = masks.shape
    cols, rows = masks.any(1), masks.any(2)  # (n, W), (n, H)
    boxes = np.stack([cols.argmax(1), rows.argmax(1), w - cols[:, ::-1].argmax(1), h - rows[:, ::-1].argmax(1)], 1)
    return np.where(cols.any(1)[:, None], boxes, 0).astype(np.int64)  # (n, 4)
