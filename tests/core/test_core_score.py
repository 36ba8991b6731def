"""Sample quality (vdm.score): the Fréchet distance against closed forms and scipy, precision and recall on
constructed point sets, the shapes classifier and what its scores do to held-out images, blur and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vdm import score as S
from vdm.data import SIZE, shape_labels, shapes, to_float, to_uint8
from vdm.images import grid, save_png


# -- the Fréchet distance -----------------------------------------------------------------------------

def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _spd(d: int, seed: int, rank: int | None = None) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, rank or d))
    return a @ a.T / d + (0 if rank else 0.1 * np.eye(d))


@pytest.mark.parametrize("rotate", [False, True], ids=["diagonal", "commuting"])
def test_frechet_distance_of_commuting_covariances_is_the_closed_form(rotate):
    # S_1 = Q diag(a) Q^T and S_2 = Q diag(b) Q^T commute: (S_1 S_2)^{1/2} = Q diag(sqrt(ab)) Q^T, so
    # d^2 = |mu_1 - mu_2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(0)
    d = 12
    a, b = rng.uniform(0.01, 5, d), rng.uniform(0.01, 5, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    q = _rotation(d, 1) if rotate else np.eye(d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    exact = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert S.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, rel=1e-10, abs=1e-10)
    # one dimension: N(0, 1) and N(3, 4) are (0 - 3)^2 + (1 - 2)^2 = 10 apart
    assert S.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, rel=1e-12)


def test_a_gaussian_is_at_distance_zero_from_itself_even_when_singular():
    for s in (_spd(20, 2), _spd(20, 3, rank=5)):  # rank 5 of 20: the covariance of 6 feature vectors
        mu = np.arange(20.0)
        assert S.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9 * np.trace(s))
    assert S.frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.zeros((3, 3))) == pytest.approx(3.0)


def test_matrix_square_roots_agree_with_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = _spd(16, 4), _spd(16, 5)
    r = S.sqrtm_psd(s1)
    np.testing.assert_allclose(r @ r, s1, atol=1e-12)
    np.testing.assert_allclose(r, linalg.sqrtm(s1).real, atol=1e-10)
    # S_1 S_2 is not symmetric: scipy's general square root, the route pytorch-fid takes
    expected = float(np.trace(linalg.sqrtm(s1 @ s2)).real)
    assert S.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)


def test_mismatched_dimensions_are_one_sentence():
    with pytest.raises(ValueError, match="differ in dimension"):
        S.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        S.gaussian_fit(np.zeros((1, 5)))


# -- precision and recall ---------------------------------------------------------------------------------

def test_knn_radii_on_a_line():
    x = np.array([[0.0, 0], [1, 0], [3, 0], [7, 0]])
    np.testing.assert_allclose(S.knn_radii(x, 1), [1, 1, 2, 4])
    np.testing.assert_allclose(S.knn_radii(x, 2), [3, 2, 3, 6])
    with pytest.raises(ValueError, match="more than k"):
        S.knn_radii(x, 4)


def test_precision_and_recall_of_constructed_sets():
    real = np.array([[i, 0.0] for i in range(10)])  # k = 1: every real ball has radius 1
    # five samples among the data (each inside a real ball), five far away (inside none): precision 1/2;
    # the near samples' balls (radius 1, their neighbours 1 apart) cover the real points 0..5: recall 6/10;
    # the far ones' (radius 10) cover none
    fake = np.array([[i + 0.5, 0.0] for i in range(5)] + [[100.0 + 10 * j, 0.0] for j in range(5)])
    assert S.precision_recall(real, fake, k=1) == pytest.approx((0.5, 0.6))
    assert S.precision_recall(real, real, k=3) == (1.0, 1.0)
    assert S.precision_recall(real, real + 1000, k=3) == (0.0, 0.0)
    # mode collapse: every sample on one data point is all precision, recall only where its ball reaches
    collapsed = np.array([[4.0, 0.01 * j] for j in range(10)])  # k = 1 radius 0.01: covers the real point 4
    assert S.precision_recall(real, collapsed, k=1) == pytest.approx((1.0, 0.1))


def test_shape_share_counts_confident_shape_classes_only():
    p = torch.tensor([[0.95, 0.03, 0.01, 0.01],   # a disc, sure
                      [0.5, 0.45, 0.04, 0.01],    # unsure
                      [0.0, 0.0, 0.0, 1.0],       # sure there is no shape
                      [0.01, 0.0, 0.99, 0.0]])    # a triangle
    assert S.shape_share(p) == 0.5


# -- the classifier and its scores ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    """The classifier users get: the shipped one (an empty cache folder, so nothing cached elsewhere counts)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a session fixture runs before the per-test one-thread fixture (tests/conftest.py)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(S.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
            net = S.classifier()
            torch.set_num_threads(threads)
            yield net
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def held(classifier):
    x, _ = shapes(1000, "test")
    return x[:500], x[500:]


def test_the_classifier_knows_the_held_out_shapes(classifier):
    x, _ = shapes(2000, "test")
    labels = shape_labels(2000, "test")
    with torch.no_grad():
        out = classifier(to_float(x))
    for head in ("kind", "colour", "top", "bottom"):
        accuracy = float((out[head].argmax(1).numpy() == labels[head]).mean())
        assert accuracy > 0.99, (head, accuracy)


def test_held_out_images_score_near_zero_and_noise_far(classifier, held):
    ref, other = held
    same = S.score(other, ref)
    noise = S.score(S.uniform_noise(500), ref)
    assert same["fd"] < 0.03 * noise["fd"], (same["fd"], noise["fd"])
    assert same["precision"] > 0.9 and same["recall"] > 0.9 and same["shapes"] > 0.9
    assert noise["recall"] == 0.0 and noise["shapes"] < 0.01
    assert same["n"] == same["n_reference"] == 500 and same["features"] == "shapes classifier"


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of std ``sigma`` pixels, edges replicated."""
    r = int(3 * sigma) + 1
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).repeat(3, 1, 1, 1)
    y = F.conv2d(F.pad(to_float(x), (r, r, 0, 0), mode="replicate"), k.view(3, 1, 1, -1), groups=3)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(3, 1, -1, 1), groups=3)
    return to_uint8(y)


def test_the_distance_grows_with_blur_and_with_noise(held):
    ref, other = held
    blurred = [S.score(_blur(other, s), ref)["fd"] for s in (0.5, 1.0, 2.0, 3.0)]
    g = torch.Generator().manual_seed(0)
    noisy = [S.score(to_uint8(to_float(other) + s * torch.randn(other.shape, generator=g)), ref)["fd"]
             for s in (0.05, 0.1, 0.2, 0.4)]
    clean = S.score(other, ref)["fd"]
    assert clean < blurred[0] and all(a < b for a, b in zip(blurred, blurred[1:])), (clean, blurred)
    assert clean < noisy[0] and all(a < b for a, b in zip(noisy, noisy[1:])), (clean, noisy)


def test_the_numbers_do_not_depend_on_the_batch_size(held):
    ref, other = held
    a = S.score(other[:200], ref[:200], batch_size=256)
    b = S.score(other[:200], ref[:200], batch_size=7)
    assert b["fd"] == pytest.approx(a["fd"], rel=1e-6)
    assert (b["precision"], b["recall"], b["shapes"]) == (a["precision"], a["recall"], a["shapes"])


def test_the_report_reads_each_number_beside_held_out_and_noise(held):
    ref, _ = held
    r = S.report(ref[:64])  # the first 64 held-out images themselves: against themselves, distance 0
    assert r["samples"]["fd"] == pytest.approx(0.0, abs=1e-6) and r["samples"]["shapes"] > 0.9
    assert r["held_out"]["fd"] < r["noise"]["fd"]
    assert r["samples"]["precision"] is None and r["noise"]["recall"] is None  # too few images to tell
    text = S.format_report(r, "samples")
    assert "not comparable to published FID" in text and "tiles holding a shape" in text
    assert "64 samples against 64 held-out images of the shapes data" in text and "need at least 256" in text
    full = S.report(ref[:S.PR_MIN_IMAGES])
    assert full["samples"]["precision"] == 1.0 and full["noise"]["recall"] == 0.0


def test_the_cheap_score_is_the_full_one_on_few_images(held):
    ref, other = held
    n = 36
    cheap = S.cheap_score(other[:n])
    assert set(cheap) == {"cheap_n", "cheap_fd", "cheap_fd_heldout", "cheap_shapes"} and cheap["cheap_n"] == n
    full = S.score(other[:n], ref[:n])  # the same held-out images it compares against: the first n of the stream
    assert cheap["cheap_fd"] == pytest.approx(full["fd"], rel=1e-9) and cheap["cheap_shapes"] == full["shapes"]
    assert cheap["cheap_fd_heldout"] == pytest.approx(S.score(ref[n:2 * n], ref[:n])["fd"], rel=1e-9)
    noise = S.cheap_score(to_float(S.uniform_noise(n)))  # floats, as an evaluation's samples are
    assert noise["cheap_fd"] > 2 * cheap["cheap_fd_heldout"] and noise["cheap_shapes"] == 0.0
    assert S.cheap_score(other[:n], "cifar10") == {} and S.cheap_score(other[:2]) == {}


# -- the cache ---------------------------------------------------------------------------------------------

def test_the_shipped_classifier_is_this_recipes_and_is_the_one_loaded(tmp_path, monkeypatch):
    """A change of the recipe must ship new weights: the packaged file is read only while it is this recipe's."""
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path))
    shipped = S._read_classifier(S.packaged_classifier_path())
    assert shipped is not None
    monkeypatch.setattr(S, "train_classifier", lambda progress=None: pytest.fail("trained although one is shipped"))
    loaded = S.load_classifier()
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), loaded.state_dict().values()))
    assert not any(tmp_path.iterdir())  # nothing cached


def test_the_cache_is_read_and_a_corrupt_one_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(S, "PACKAGED_DIR", tmp_path / "not-shipped")  # the cache's own behaviour
    trained = []

    def fake_train(progress=None):  # the recipe itself is tested above; here only what the cache does
        trained.append(1)
        torch.manual_seed(len(trained))
        return S.ShapesClassifier().eval()

    monkeypatch.setattr(S, "train_classifier", fake_train)
    said = []
    first = S.load_classifier(announce=lambda: said.append(len(trained)))
    path = S.classifier_path()
    assert path.parent == tmp_path and path.is_file() and len(trained) == 1
    assert said == [0]  # told before training, once
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left beside it
    again = S.load_classifier(announce=lambda: said.append("again"))
    assert said == [0]  # a cached classifier is read without a word
    assert len(trained) == 1 and all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                                        again.state_dict().values()))
    for bad in (b"", b"not a safetensors file", path.read_bytes()[:-100]):
        path.write_bytes(bad)
        S.load_classifier()
        assert S._read_classifier(path) is not None  # rebuilt and readable
    assert len(trained) == 4
    monkeypatch.setattr(S, "RECIPE", S.RECIPE + " changed")  # a file of another recipe is not this one's
    assert S._read_classifier(path) is None


def test_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(S.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert S.cache_dir() == tmp_path / "vdm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert S.cache_dir() == tmp_path / "home" / ".cache" / "vdm"


# -- grids, Inception ---------------------------------------------------------------------------------------

def test_grid_tiles_read_back_the_images_of_a_grid(tmp_path):
    x, _ = shapes(7, "test")
    save_png(grid(x, scale=2), tmp_path / "g.png")  # 3x3 cells, the last two blank, as the trainer writes it
    assert torch.equal(S.grid_tiles(tmp_path / "g.png"), x)
    # torchvision's save_image layout: 2 pixels of black padding, tiles of 64 pixels given by hand
    big = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    canvas = torch.zeros(3, 2 + 2 * 66, 2 + 4 * 66, dtype=torch.uint8)
    for i in range(7):
        r, c = divmod(i, 4)
        canvas[:, 2 + r * 66: 2 + r * 66 + 64, 2 + c * 66: 2 + c * 66 + 64] = big[i]
    save_png(canvas.permute(1, 2, 0).numpy(), tmp_path / "tv.png")
    assert torch.equal(S.grid_tiles(tmp_path / "tv.png", tile=64, pad=2), x)
    save_png(np.zeros((50, 70, 3), np.uint8), tmp_path / "odd.png")
    with pytest.raises(ValueError, match="give --tile"):
        S.grid_tiles(tmp_path / "odd.png")
    (tmp_path / "text.png").write_text("no picture")
    with pytest.raises(ValueError, match="not an image"):
        S.grid_tiles(tmp_path / "text.png")


def test_the_fid_inception_pools_over_real_pixels_only():
    # TensorFlow's average pool divides by the pixels inside the image: a constant input stays constant at
    # the border, where torchvision's (zero padding counted) would darken it
    net = S.fid_inception()
    block = net.Mixed_5b
    x = torch.randn(1, 192, 5, 5)
    expected = block.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
    with torch.no_grad():
        assert torch.allclose(block(x)[:, -32:], expected)
        y = torch.randn(1, 2048, 3, 3)
        assert torch.allclose(net.Mixed_7c(y)[:, -192:], net.Mixed_7c.branch_pool(F.max_pool2d(y, 3, 1, 1)))


def test_inception_weights_are_read_from_a_file_or_refused_in_a_sentence(tmp_path):
    torch.manual_seed(0)
    state = S.fid_inception().state_dict()
    torch.save(state, tmp_path / "pt_inception.pth")  # random weights in pytorch-fid's format
    space = S.inception_space(tmp_path / "pt_inception.pth")
    f, p = S.features(space, shapes(2, "test")[0])
    assert f.shape == (2, 2048) and p is None and np.isfinite(f).all()
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other weights than Inception's"):
        S.inception_space(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a PyTorch weights file"):
        S.inception_space(tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="does not exist"):
        S.inception_space(tmp_path / "missing.pth")


# -- vdm score -----------------------------------------------------------------------------------------------

def test_vdm_score_of_a_run_and_of_a_grid_of_its_samples(classifier, tiny_run, capsys, tmp_path):
    from vdm_cli.main import main

    _, run, _ = tiny_run
    assert main(["score", str(run), "--n", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"8 samples of {run} (step" in out and "ancestral, 20 of 20 steps" in out
    assert "not comparable to published FID" in out and "tiles holding a shape" in out
    x, _ = shapes(9, "test")
    save_png(grid(x, scale=2), tmp_path / "g.png")
    assert main(["score", str(tmp_path / "g.png"), "--json"]) == 0
    import json

    r = json.loads(capsys.readouterr().out)
    assert r["samples"]["n"] == 9 and r["samples"]["fd"] < r["noise"]["fd"] and r["samples"]["shapes"] > 0.5


def test_vdm_score_refuses_bad_input_in_one_sentence(classifier, tmp_path, capsys):
    from vdm.config import TrainConfig
    from vdm.run import new_run
    from vdm_cli.main import main

    new_run(TrainConfig(runs_dir=str(tmp_path), name="pts", data="gmm")).write_config()
    (tmp_path / "empty").mkdir()
    torch.save({"weight": torch.zeros(3)}, tmp_path / "w.pth")
    x, _ = shapes(4, "test")
    save_png(grid(x), tmp_path / "g.png")
    cases = [([str(tmp_path / "missing")], "does not exist"),
             ([str(tmp_path / "empty")], "holds no .png or .jpg files"),
             ([str(tmp_path / "pts")], "is a run on 2-D points"),
             ([str(tmp_path / "g.png"), "--inception", str(tmp_path / "w.pth")], "other weights than Inception's"),
             ([str(tmp_path / "g.png"), "--data", "shapes", "--n", "3"], "too few to score")]
    for argv, message in cases:
        assert main(["score"] + argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_runs_sample_records_carry_the_cheap_score_of_their_grid(classifier, tiny_run):
    """The trainer scores each grid it draws: the record's fields are cheap_score of that grid's own images."""
    import json

    from vdm.run import metrics_path, sample_path

    _, run, out = tiny_run
    recs = [json.loads(line) for line in metrics_path(run).read_text().splitlines()]
    last = [r for r in recs if r["kind"] == "sample"][-1]
    again = S.cheap_score(to_float(S.grid_tiles(sample_path(run))))  # the PNG holds the samples' uint8 levels
    assert last["cheap_n"] == again["cheap_n"] == 4
    assert last["cheap_fd"] == pytest.approx(again["cheap_fd"], rel=1e-6)
    assert last["cheap_shapes"] == again["cheap_shapes"] and 0 <= last["cheap_shapes"] <= 1
    assert last["cheap_fd_heldout"] < last["cheap_fd"]  # a one-epoch model is far from held-out images
    assert "tiles hold a shape" in out and "not comparable to published FID" in out


def test_no_cheap_score_where_there_is_no_shapes_classifier():
    assert S.cheap_score(torch.zeros(8, 2), "gmm") == {} and S.cheap_score(torch.zeros(8, 3, 32, 32), "cifar10") == {}


def test_scoring_leaves_torchs_global_generator_alone():
    """The trainer scores every grid: loading the classifier and scoring must not draw from torch's global
    generator, or a run that scores its grids trains differently from one that does not (resume tests caught it)."""
    S._CLASSIFIERS.clear()
    S._cheap_reference.cache_clear()
    before = torch.get_rng_state()
    S.cheap_score(to_float(shapes(5, "test")[0]))
    assert torch.equal(before, torch.get_rng_state())
