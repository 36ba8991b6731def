"""Sample quality without a download: a Fréchet distance, precision and recall, and the share of tiles holding a shape.

Bits per dimension measure the bound, not what a learner sees. This module measures the samples
themselves, in the feature space of a small classifier trained on the shapes data's own labels
(its shape, the shape's colour, the background's two colours; :func:`train_classifier`), so it
works offline. Its numbers are of this feature space: they are NOT comparable to published FID,
which is measured with Inception features (:func:`inception_features`, when its weights file is
at hand) on 50,000 images.

- Fréchet distance between Gaussian fits N(mu_1, S_1), N(mu_2, S_2) of two feature sets:
  d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2}), in float64
  (:func:`frechet_distance`). It is 0 for two sets from one distribution up to the bias of
  finite samples, which grows as the sets shrink: compare numbers at the same N only.
- Precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models"): each point of a set gets the radius of its k-th nearest
  neighbour in its own set; precision is the share of samples inside some held-out point's
  ball (samples that look like data), recall the share of held-out points inside some
  sample's ball (how much of the data the samples cover) (:func:`precision_recall`).
- Tiles holding a shape: the share of images the classifier gives one shape class with
  probability over CONFIDENT (:func:`shape_share`); its fourth class, "no shape", was trained
  on backgrounds without a shape, uniform noise and smooth colour fields.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vdm.atomic import atomic_path
from vdm.data import SIZE, load, render_shapes, shape_labels, shapes, to_float, to_uint8

FEATURES = 64  # the classifier's feature width: small, so that a few hundred images fit a covariance
WIDTHS = (8, 16, 32)  # its conv channels: 41,000 parameters, over 99 % held-out accuracy, trained in seconds
K_NEIGHBOURS = 3  # Kynkäänniemi et al.'s k for the radii of precision and recall
# precision and recall from fewer images are left out of the report: the k-NN balls of a few dozen points in
# FEATURES dimensions are so wide that a tiny run's samples, all alike, had precision 1.00 against 64 and
# 128 held-out images and 0.00 against 256
PR_MIN_IMAGES = 256
CONFIDENT = 0.9  # a tile holds a shape when one shape class has probability over this
SHAPE_KINDS = ("disc", "square", "triangle")  # vdm.data.shapes' kind 0, 1, 2; class 3 is "no shape"
NO_SHAPE = len(SHAPE_KINDS)
# the classifier's heads: its classes per attribute of vdm.data.shape_labels ("kind" with "no shape")
HEADS = {"kind": len(SHAPE_KINDS) + 1, "colour": 8, "top": 10, "bottom": 10}
CLASSIFIER_SEED = 0
CLASSIFIER_IMAGES = 12_000  # shapes of the training split it learns from
CLASSIFIER_NEGATIVES = 3_000  # images without a shape beside them
CLASSIFIER_EPOCHS = 2
CLASSIFIER_BATCH = 50
CLASSIFIER_LR = 3e-3
# the recipe's fingerprint: the cache holds one classifier per recipe, so changing any of it trains anew
RECIPE = (f"shapes-classifier v1 features={FEATURES} widths={WIDTHS} heads={sorted(HEADS.items())} seed={CLASSIFIER_SEED} "
          f"images={CLASSIFIER_IMAGES} negatives={CLASSIFIER_NEGATIVES} epochs={CLASSIFIER_EPOCHS} "
          f"batch={CLASSIFIER_BATCH} lr={CLASSIFIER_LR} one-cycle batchnorm")
PACKAGED_DIR = Path(__file__).with_name("weights")  # the shipped classifier (package data)
CACHE_ENV = "VDM_CACHE_DIR"  # where the trained classifier is kept, when set (else the user's cache folder)


# -- the math ---------------------------------------------------------------------------------------------

def gaussian_fit(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, S) of features [N, D] in float64: the mean and the unbiased covariance (N - 1 in the denominator)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 feature vectors [N, D], got shape {f.shape}.")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix: V diag(sqrt(max(l, 0))) V^T.

    From the eigendecomposition a = V diag(l) V^T (numpy's eigh, float64). Rounding makes tiny
    eigenvalues of a singular covariance slightly negative; they are 0.
    """
    a = np.asarray(a, dtype=np.float64)
    a = (a + a.T) / 2  # exactly symmetric, so eigh's real spectrum is the one meant
    lam, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(lam, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S_1 S_2)^{1/2}) = sum_i sqrt(l_i), l_i the eigenvalues of S_1^{1/2} S_2 S_1^{1/2}.

    S_1 S_2 is similar to the symmetric PSD matrix S_1^{1/2} S_2 S_1^{1/2}, so they share
    eigenvalues, all real and >= 0: no complex square root of a non-symmetric matrix (scipy's
    sqrtm route, whose imaginary rounding pytorch-fid has to discard) and no failure on
    singular covariances.
    """
    r = sqrtm_psd(s1)
    m = r @ np.asarray(s2, dtype=np.float64) @ r
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(mu1, s1, mu2, s2) -> float:
    """d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2}), the squared 2-Wasserstein
    distance between N(mu_1, S_1) and N(mu_2, S_2) (what FID reports), in float64; never below 0."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(s1, dtype=np.float64), np.asarray(s2, dtype=np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"the two Gaussians differ in dimension: mean {mu1.shape} and {mu2.shape}, "
                         f"covariance {s1.shape} and {s2.shape}.")
    d = mu1 - mu2
    return max(float(d @ d + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2)), 0.0)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] in float64, summed coordinate by coordinate in blocks of rows
    (not |a|^2 + |b|^2 - 2ab, which cancels catastrophically for near points)."""
    out = np.empty((len(a), len(b)))
    step = max(1, (1 << 22) // max(1, len(b) * a.shape[1]))
    for i in range(0, len(a), step):
        out[i:i + step] = np.sqrt(((a[i:i + step, None, :] - b[None, :, :]) ** 2).sum(-1))
    return out


def knn_radii(features, k: int = K_NEIGHBOURS) -> np.ndarray:
    """Each point's distance to its k-th nearest neighbour among the others of its set."""
    f = np.asarray(features, dtype=np.float64)
    if not 1 <= k < len(f):
        raise ValueError(f"k-th nearest neighbour radii need more than k = {k} points, got {len(f)}.")
    d = _distances(f, f)
    return np.partition(d, k, axis=1)[:, k]  # column 0 of the sorted row is the point itself, at distance 0


def manifold_share(points, centres, radii) -> float:
    """The share of ``points`` inside at least one ball |x - c_j| <= r_j (Kynkäänniemi et al.'s f(x, Phi))."""
    d = _distances(np.asarray(points, dtype=np.float64), np.asarray(centres, dtype=np.float64))
    return float((d <= np.asarray(radii)[None, :]).any(1).mean())


def precision_recall(real, fake, k: int = K_NEIGHBOURS) -> tuple[float, float]:
    """(precision, recall) of samples ``fake`` against data ``real`` (feature vectors [N, D]).

    precision = (1/|fake|) sum_g [g inside the real manifold], recall = (1/|real|) sum_r [r inside the
    fake manifold]; a set's manifold is the union of balls around its points of their k-NN radii.
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    return manifold_share(fake, real, knn_radii(real, k)), manifold_share(real, fake, knn_radii(fake, k))


def shape_share(kind_probs, threshold: float = CONFIDENT) -> float:
    """The share of images whose probability of one shape class (disc, square or triangle) exceeds ``threshold``."""
    p = torch.as_tensor(kind_probs)
    return float((p[:, :len(SHAPE_KINDS)].max(1).values > threshold).float().mean())


# -- the classifier ---------------------------------------------------------------------------------------

class ShapesClassifier(nn.Module):
    """Three conv-batchnorm-ReLU-maxpool stages (WIDTHS channels at 32 -> 16 -> 8 -> 4 pixels), a linear map to FEATURES numbers
    (the feature space the scores are measured in), and after a ReLU one linear head per entry of HEADS.

    Used in eval mode only (train_classifier returns it so): batch normalisation is then a fixed affine
    map per channel, and an image's features do not depend on the batch it is in.
    Input: images as floats in [-1, 1] (vdm.data.to_float).
    """

    def __init__(self):
        super().__init__()
        layers, width = [], 3
        for out in WIDTHS:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * (SIZE // 8) ** 2, FEATURES))
        self.heads = nn.ModuleDict({k: nn.Linear(FEATURES, n) for k, n in HEADS.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.relu(self.features(x))
        return {k: head(h) for k, head in self.heads.items()}


def _negatives(n: int, g: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """n images without a shape, a third each: a background gradient alone, uniform noise, and a smooth
    colour field (4x4 uniform colours, bilinearly enlarged); their labels, -100 (no label) where none applies."""
    a, b = n // 3, n // 3
    c = n - a - b
    labels = shape_labels(a, "train", seed=CLASSIFIER_SEED + 1)  # another stream than the positives'
    bg = render_shapes(labels, shape=False)
    noise = torch.randint(0, 256, (b, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    coarse = torch.rand((c, 3, 4, 4), generator=g) * 255
    fields = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False).round().to(torch.uint8)
    none = torch.full((n,), -100, dtype=torch.int64)
    out = {"kind": torch.full((n,), NO_SHAPE, dtype=torch.int64), "colour": none.clone(),
           "top": none.clone(), "bottom": none.clone()}
    out["top"][:a] = torch.from_numpy(labels["top"])
    out["bottom"][:a] = torch.from_numpy(labels["bottom"])
    return torch.cat([bg, noise, fields]), out


def train_classifier(progress=None) -> ShapesClassifier:
    """The classifier of RECIPE, trained from its fixed seed: CLASSIFIER_EPOCHS passes of Adam over
    CLASSIFIER_IMAGES training shapes and CLASSIFIER_NEGATIVES images without one, the loss the sum of the
    heads' cross-entropies, the learning rate on a one-cycle schedule (up to CLASSIFIER_LR and down to ~0:
    with a constant rate the shape head stayed under 99 % held-out accuracy at twice the steps).
    The global random state is left as it was. ``progress(done, total)`` after each step."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CLASSIFIER_SEED)
        g = torch.Generator().manual_seed(CLASSIFIER_SEED)
        x, _ = shapes(CLASSIFIER_IMAGES, "train", seed=CLASSIFIER_SEED)
        lab = {k: torch.from_numpy(v) for k, v in shape_labels(CLASSIFIER_IMAGES, "train", CLASSIFIER_SEED).items()
               if k in HEADS}
        neg, neg_lab = _negatives(CLASSIFIER_NEGATIVES, g)
        x = torch.cat([x, neg])
        lab = {k: torch.cat([lab[k], neg_lab[k]]) for k in HEADS}
        net = ShapesClassifier()
        opt = torch.optim.Adam(net.parameters(), lr=CLASSIFIER_LR)
        steps = CLASSIFIER_EPOCHS * (len(x) // CLASSIFIER_BATCH)
        cycle = torch.optim.lr_scheduler.OneCycleLR(opt, CLASSIFIER_LR, total_steps=steps, pct_start=0.15)
        done = 0
        for _ in range(CLASSIFIER_EPOCHS):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x) - CLASSIFIER_BATCH + 1, CLASSIFIER_BATCH):
                idx = order[i:i + CLASSIFIER_BATCH]
                out = net(to_float(x[idx]))
                loss = sum(F.cross_entropy(out[k], lab[k][idx], ignore_index=-100) for k in HEADS)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                cycle.step()
                done += 1
                if progress is not None:
                    progress(done, steps)
    return net.eval().requires_grad_(False)


def cache_dir() -> Path:
    """Where the trained classifier is kept: $VDM_CACHE_DIR, else $XDG_CACHE_HOME/vdm, else ~/.cache/vdm."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdm"


def classifier_path() -> Path:
    """The cache file of this RECIPE's classifier (its name carries the recipe's hash)."""
    return cache_dir() / f"shapes-classifier-{hashlib.sha256(RECIPE.encode()).hexdigest()[:12]}.safetensors"


def _read_classifier(path: Path) -> ShapesClassifier | None:
    """The cached classifier, or None when the file is missing, unreadable, of another recipe or not these weights."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("recipe") != RECIPE:
                return None
            state = {k: f.get_tensor(k) for k in f.keys()}
        with torch.random.fork_rng(devices=[]):  # its initial weights, overwritten at once, would draw from
            net = ShapesClassifier()  # torch's global generator: a run scoring its grids would train differently
        net.load_state_dict(state)
    except Exception:  # safetensors raises its own error types for truncated or foreign files
        return None
    if not all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point()):
        return None
    return net.eval().requires_grad_(False)


def packaged_classifier_path() -> Path:
    """The classifier shipped with vdm (trained by this RECIPE), so that every machine scores with the same weights."""
    return PACKAGED_DIR / classifier_path().name


def load_classifier(progress=None, announce=None) -> ShapesClassifier:
    """The shapes classifier: the one shipped with vdm (:func:`packaged_classifier_path`) while it is this
    RECIPE's, else read from the cache (:func:`classifier_path`), else trained (train_classifier, seconds) and
    written there atomically; a corrupt or foreign cache file is trained anew and replaced. A cache folder
    that cannot be written leaves the classifier in memory only. ``announce()`` is called only before training."""
    net = _read_classifier(packaged_classifier_path())
    if net is not None:
        return net
    path = classifier_path()
    net = _read_classifier(path)
    if net is not None:
        return net
    from safetensors.torch import save_file

    if announce is not None:
        announce()
    net = train_classifier(progress)
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"recipe": RECIPE})
    except OSError:
        pass  # a read-only home: the scores are the same, the next call trains again
    return net


_CLASSIFIERS: dict[str, ShapesClassifier] = {}  # cache location -> classifier, read once per process


def classifier(announce=None) -> ShapesClassifier:
    """load_classifier, once per process and cache location (``announce`` as there)."""
    key = str(classifier_path())
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = load_classifier(announce=announce)
    return _CLASSIFIERS[key]


# -- feature spaces ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSpace:
    """A map from images (floats in [-1, 1], [B, 3, 32, 32]) to (features [B, D], kind probabilities
    [B, 4] or None), and the words that say what its numbers are."""

    name: str
    note: str
    net: nn.Module
    shapes: bool  # whether it gives the shape probabilities (the shapes classifier)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.shapes:
            f = self.net.features(x)
            return f, self.net.heads["kind"](F.relu(f)).softmax(1)
        return self.net(x), None


def shapes_space(data: str = "shapes", announce=None) -> FeatureSpace:
    """The feature space of the classifier trained on the shapes data's own labels; for other ``data`` (no
    classifier of their own here) the same features, named as a rough proxy, without the shape share.
    ``announce()`` is called if the classifier has to be trained first (seconds)."""
    if data == "shapes":
        return FeatureSpace("shapes classifier", "Fréchet distance in the features of a small classifier trained on "
                            "the shapes data's labels: not comparable to published FID (Inception features, 50,000 "
                            "images)", classifier(announce), True)
    return FeatureSpace(f"shapes classifier (trained on the shapes data, not on {data})",
                        f"a rough proxy: these features know shapes and colours, not {data}'s content; not comparable "
                        "to published FID (pass --inception with pytorch-fid's weights file for its features)",
                        classifier(announce), False)


def features(space: FeatureSpace, images: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, torch.Tensor | None]:
    """(features float64 [N, D], kind probabilities [N, 4] or None) of images: uint8 [N, 3, 32, 32], or floats
    in [-1, 1] (first rounded to the 256 levels, as a saved image would be), taken ``batch_size`` at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    x = images if images.dtype == torch.uint8 else to_uint8(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(x.shape)}.")
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f, p = space(to_float(x[i:i + batch_size].cpu()))
        feats.append(f.double())
        if p is not None:
            probs.append(p)
    return torch.cat(feats).numpy(), (torch.cat(probs) if probs else None)


def score(images: torch.Tensor, reference: torch.Tensor, space: FeatureSpace | None = None, batch_size: int = 256,
          k: int = K_NEIGHBOURS) -> dict:
    """The numbers of ``images`` against the held-out ``reference`` images in ``space`` (default: the shapes
    classifier's): {"fd": Fréchet distance, "precision", "recall", "shapes": the share of tiles holding a shape
    (None without the classifier), "n", "n_reference", "features": the space's name}."""
    space = space or shapes_space()
    n, m = len(images), len(reference)
    if min(n, m) <= k:
        raise ValueError(f"scoring needs more than k = {k} images on each side, got {n} and {m}.")
    f, p = features(space, images, batch_size)
    r, _ = features(space, reference, batch_size)
    precision, recall = precision_recall(r, f, k)
    return {"fd": frechet_distance(*gaussian_fit(f), *gaussian_fit(r)), "precision": precision, "recall": recall,
            "shapes": shape_share(p) if p is not None else None, "n": n, "n_reference": m, "features": space.name}


# -- Inception, from a local weights file -----------------------------------------------------------------

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's port of the TensorFlow FID network
INCEPTION_SIZE = 299


def fid_inception(state: dict | None = None) -> nn.Module:
    """The network FID is defined with (TensorFlow's 2015 Inception, as pytorch-fid ports it): torchvision's
    Inception v3 with 1008 classes, no auxiliary head, and the pooling branches of Mixed_5b-d, 6b-e and 7b
    averaging over real pixels only (count_include_pad=False), of 7c max-pooling. ``state``: pytorch-fid's
    weights (loaded strictly); None leaves the weights random (for tests of the plumbing)."""
    from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

    def pooled(base, pool):
        class Block(base):
            def _forward(self, x):
                out = super()._forward(x)  # its last branch pooled with zero padding counted: replaced
                out[-1] = self.branch_pool(pool(x))
                return out
        return Block

    def avg(x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def top(x):
        return F.max_pool2d(x, 3, stride=1, padding=1)

    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    A, C, E = pooled(InceptionA, avg), pooled(InceptionC, avg), pooled(InceptionE, avg)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
    net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e = C(768, 128), C(768, 160), C(768, 160), C(768, 192)
    net.Mixed_7b, net.Mixed_7c = E(1280), pooled(InceptionE, top)(2048)
    if state is not None:
        net.load_state_dict(state)
    return net.eval().requires_grad_(False)


class _InceptionPool(nn.Module):
    """Images in [-1, 1] -> the 2048 features of Inception's last average pool, as pytorch-fid takes them:
    bilinearly resized to 299x299 (the [0, 1] -> [-1, 1] map pytorch-fid applies after resizing commutes with it)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b,
                      n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, n.avgpool):
            x = layer(x)
        return x.flatten(1)


def inception_space(weights: str | os.PathLike) -> FeatureSpace:
    """The Inception feature space from pytorch-fid's weights file (``INCEPTION_FILE``) at ``weights``;
    one ValueError sentence for a file that is missing or holds other weights."""
    p = Path(weights)
    if not p.is_file():
        raise ValueError(f"Inception weights file {p} does not exist." if not p.exists() else f"{p} is not a file.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch's own errors for what is not a weights file
        raise ValueError(f"{p} is not a PyTorch weights file ({type(e).__name__}); pass pytorch-fid's "
                         f"{INCEPTION_FILE}.") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{p} holds no weights (a dict of tensors); pass pytorch-fid's {INCEPTION_FILE}.")
    try:
        net = fid_inception(state)
    except RuntimeError:  # load_state_dict: missing, unexpected or mis-shaped tensors
        raise ValueError(f"{p} holds other weights than Inception's for FID (pytorch-fid's {INCEPTION_FILE}).") from None
    return FeatureSpace("Inception (pytorch-fid's weights)", "FID: the Fréchet distance in Inception's pool features; "
                        "published FIDs use 50,000 images, and this one's N is smaller, so it reads higher",
                        _InceptionPool(net), False)


# -- where the images come from -----------------------------------------------------------------------------

GRID_TILE = SIZE + 1  # vdm.images.grid: a 32-pixel tile and a 1-pixel white separator, all upscaled alike


def grid_scale(w: int, h: int) -> int | None:
    """The scale s of a vdm grid of w x h pixels (w = s (33 columns + 1), h = s (33 rows + 1)), or None."""
    for s in range(1, 17):
        if w % s == 0 and h % s == 0 and (w // s - 1) % GRID_TILE == 0 and (h // s - 1) % GRID_TILE == 0 \
                and w // s > 1 and h // s > 1:
            return s
    return None


def grid_tiles(path: str | os.PathLike, tile: int | None = None, pad: int = 0) -> torch.Tensor:
    """The tiles of a grid PNG as uint8 [N, 3, 32, 32], row by row.

    ``tile`` None: a grid vdm wrote (vdm sample, the trainer's samples/), its scale read from its size.
    Otherwise tiles of ``tile`` pixels with ``pad`` pixels between them and around them (torchvision's
    save_image: pad 2), each resized to 32x32 (area averaging when ``tile`` is a multiple of 32, which
    undoes a nearest-neighbour enlargement exactly). Blank tiles (one colour) at the end are left out:
    they are the padding of a grid whose last row is not full.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"image file {p} does not exist." if not p.exists() else f"{p} is not a file.")
    try:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ValueError(f"{p} is too large an image to read.") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{p} is not an image that can be read ({str(e)[:160]}).") from None
    h, w = a.shape[:2]
    if tile is None:
        s = grid_scale(w, h)
        if s is None:
            raise ValueError(f"{p} ({w}x{h} pixels) is not laid out as a grid vdm writes; give --tile (the side "
                             "of one image in pixels) and --pad (the pixels between images).")
        tile, pad = SIZE * s, s
    if tile < 1 or pad < 0:
        raise ValueError(f"a tile must be at least 1 pixel and the padding at least 0, got {tile} and {pad}.")
    cols, rows = (w - pad) // (tile + pad), (h - pad) // (tile + pad)
    if cols < 1 or rows < 1:
        raise ValueError(f"{p} ({w}x{h} pixels) holds no whole tile of {tile} pixels with padding {pad}.")
    tiles = [a[pad + r * (tile + pad): pad + r * (tile + pad) + tile, pad + c * (tile + pad): pad + c * (tile + pad) + tile]
             for r in range(rows) for c in range(cols)]
    while tiles and (tiles[-1] == tiles[-1][0, 0]).all():
        tiles.pop()
    if not tiles:
        raise ValueError(f"{p} holds only blank tiles.")
    x = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).float()
    if tile != SIZE:
        mode = "area" if tile % SIZE == 0 else "bilinear"
        x = F.interpolate(x, size=(SIZE, SIZE), mode=mode, **({"antialias": True} if mode == "bilinear" else {}))
    return x.round().clamp(0, 255).to(torch.uint8).contiguous()


def held_out(data: str, n: int, data_dir: str | os.PathLike = "data") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n held-out images to score against, n more to show what held-out images themselves score, or None
    when the split has fewer than 2n). The shapes data's test stream is endless, so it always has 2n."""
    if data == "shapes":
        x, _ = shapes(2 * n, "test")
    else:
        x = load(data, "test", data_dir)
    if len(x) < n:
        raise ValueError(f"the {data} data set has {len(x)} held-out images, fewer than the {n} to score against.")
    return x[:n], (x[n:2 * n] if len(x) >= 2 * n else None)


def uniform_noise(n: int, seed: int = 0) -> torch.Tensor:
    """n images of uniform noise over the 256 levels: the far end of every scale the report prints."""
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# -- the report -------------------------------------------------------------------------------------------

def report(images: torch.Tensor, data: str = "shapes", space: FeatureSpace | None = None, data_dir="data",
           batch_size: int = 256, k: int = K_NEIGHBOURS) -> dict:
    """The numbers of ``images`` against as many held-out images of ``data``, with two columns to read them
    by: other held-out images (what a perfect model scores at this N; None where the split is too small) and
    uniform noise. {"samples": score(...), "held_out": ..., "noise": ..., "features": name, "note": how to read};
    precision and recall are None below PR_MIN_IMAGES images."""
    space = space or shapes_space()
    reference, other = held_out(data, len(images), data_dir)
    out = {"data": data, "features": space.name, "note": space.note,
           "samples": score(images, reference, space, batch_size, k)}
    out["held_out"] = score(other, reference, space, batch_size, k) if other is not None else None
    out["noise"] = score(uniform_noise(len(images)), reference, space, batch_size, k)
    if len(images) < PR_MIN_IMAGES:
        for c in (out["samples"], out["held_out"], out["noise"]):
            if c is not None:
                c["precision"] = c["recall"] = None
    return out


def format_report(r: dict, what: str = "images") -> str:
    """The report as a table a learner reads, each number beside held-out images' and noise's at the same N;
    ``what`` names the images scored (e.g. "samples of runs/demo at step 1,900")."""
    cols = [("samples", r["samples"]), ("held-out", r["held_out"]), ("noise", r["noise"])]
    cols = [(name, c) for name, c in cols if c is not None]
    rows = [("Fréchet distance", "fd", "{:.1f}", "lower is better"),
            ("precision", "precision", "{:.2f}", "share of samples that look like data"),
            ("recall", "recall", "{:.2f}", "share of the data the samples cover")]
    if r["samples"]["shapes"] is not None:
        rows.append(("tiles holding a shape", "shapes", "{:.0%}", f"a shape class over {CONFIDENT:g} sure"))
    n = r["samples"]["n"]
    lines = [f"{n} {what} against {n} held-out images of the {r['data']} data, in the features of the {r['features']}:",
             "", f"{'':22}" + "".join(f"{name:>10}" for name, _ in cols)]
    for label, key, fmt, meaning in rows:
        cells = "".join(f"{'-' if c[key] is None else fmt.format(c[key]):>10}" for _, c in cols)
        lines.append(f"{label:22}{cells}   {meaning}")
    lines.append("")
    if r["samples"]["precision"] is None:
        lines.append(f"precision and recall need at least {PR_MIN_IMAGES} images (with fewer, the k-NN balls in "
                     f"{FEATURES} dimensions are too wide to tell); score {PR_MIN_IMAGES} or more.")
    if r["held_out"] is not None:
        lines.append(f"held-out: {n} other held-out images, the best a model can score at this N; "
                     "noise: uniform noise, the far end.")
    lines.append(f"{r['note']}; compare numbers at the same N only.")
    return "\n".join(lines)


# -- a cheap score for the trainer's evaluations ------------------------------------------------------------

@lru_cache(maxsize=4)
def _cheap_reference(n: int, path: str) -> tuple[np.ndarray, float]:
    """(features of n held-out shapes, the Fréchet distance of n other held-out shapes to them); ``path``,
    the classifier's, keys the cache."""
    space = shapes_space()
    ref, other = held_out("shapes", n)
    r, _ = features(space, ref)
    o, _ = features(space, other)
    return r, frechet_distance(*gaussian_fit(o), *gaussian_fit(r))


def cheap_score(samples: torch.Tensor, data: str = "shapes") -> dict:
    """Record fields for an evaluation's samples (the grid it draws anyway, a few dozen images), named cheap
    because so few samples bias the Fréchet distance upward: cheap_fd_heldout, that of as many held-out
    images, is the floor to read cheap_fd against.

    {"cheap_n": N, "cheap_fd", "cheap_fd_heldout", "cheap_shapes": the share of tiles holding a shape}.

    No precision or recall: with a few dozen points in FEATURES dimensions the k-NN balls are so wide that
    uniform noise reached a precision of 1.0 at N = 36. Only for the shapes data, whose classifier the
    features are; {} for other data or fewer than 3 images. The held-out side is computed once per process
    and N; the classifier is the shipped one (:func:`load_classifier`).
    """
    n = len(samples)
    if data != "shapes" or n < 3:
        return {}
    ref, floor = _cheap_reference(n, str(classifier_path()))
    f, p = features(shapes_space(), samples)
    return {"cheap_n": n, "cheap_fd": frechet_distance(*gaussian_fit(f), *gaussian_fit(ref)),
            "cheap_fd_heldout": floor, "cheap_shapes": shape_share(p)}


def cheap_line(fields: dict, run_dir=None) -> str:
    """One line for :func:`cheap_score`'s fields: the tiles holding a shape, and the Fréchet distance beside its
    floor (as many held-out images), named as what it is."""
    n = fields["cheap_n"]
    held = round(fields["cheap_shapes"] * n)
    more = f"; vdm score {run_dir} measures 256" if run_dir is not None else ""
    return (f"sample quality ({n} samples, the shapes classifier's features, not comparable to published FID): "
            f"{held} of {n} tiles hold a shape ({fields['cheap_shapes']:.0%}); Fréchet distance "
            f"{fields['cheap_fd']:.4g} vs {fields['cheap_fd_heldout']:.4g} for {n} held-out images{more}")
