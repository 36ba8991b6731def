"""`vdm render` onto a full disk: one sentence naming the folder, a non-zero exit, nothing half-written left,
and every finished file that was there before kept.

The full disk is simulated in-process: manim's encoder of one video segment fails as it does when the device is
full (a RuntimeError raised from PyAV's OSError ENOSPC), after writing part of its file.
"""

from __future__ import annotations

import errno

import pytest

from animations import render as r
from test_animations_render import TINY, needs_rendering
from vdm_cli.main import main


@needs_rendering
def test_render_onto_a_full_disk_is_one_sentence_and_leaves_what_was_there(tmp_path, monkeypatch, capsys):
    from manim.scene import video_segment_encoder as vse

    out = tmp_path / "videos"
    out.mkdir()
    (out / "Summary.mp4").write_bytes(b"an earlier, finished video")
    (out / "notes.txt").write_text("the user's own file")
    (out / "slides").mkdir()
    (out / "slides" / "Summary.json").write_text('{"slides": []}')

    original, calls = vse.VideoSegmentEncoder.finish, []

    def finish(self):
        calls.append(self)
        if len(calls) == 3:  # the third segment finds the disk full, half-written
            self._target_for_test.write_bytes(b"\0" * 100)
            disk = OSError(errno.ENOSPC, "No space left on device", str(self._target_for_test))
            raise RuntimeError(f"Failed to encode video segment {self._target_for_test}") from disk
        return original(self)

    init = vse.VideoSegmentEncoder.__init__

    def remember(self, *, target, spec):
        init(self, target=target, spec=spec)
        self._target_for_test = target

    monkeypatch.setattr(vse.VideoSegmentEncoder, "finish", finish)
    monkeypatch.setattr(vse.VideoSegmentEncoder, "__init__", remember)
    scene = r.render_scene
    monkeypatch.setattr(r, "render_scene", lambda cls, quality, o, sections=False, overrides=None:
                        scene(cls, quality, o, sections, TINY))

    status = main(["render", "summary", "--quality", "low", "--out", str(out)])

    err = capsys.readouterr().err.strip()
    assert status != 0
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "disk is full" in err and str(out) in err
    # what was there is there, unchanged; nothing the failed render wrote is left
    assert (out / "Summary.mp4").read_bytes() == b"an earlier, finished video"
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert (out / "slides" / "Summary.json").read_text() == '{"slides": []}'
    assert not (out / "media" / "partial_movie_files" / "Summary").exists()
    assert not (out / "slides" / "files" / "Summary").exists()
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == ["Summary.mp4", "notes.txt", "slides/Summary.json"], left


def test_a_failed_gif_leaves_no_partial_file(tmp_path):
    not_a_video = tmp_path / "Scene.mp4"
    not_a_video.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="ffmpeg could not make"):
        r.to_gif(not_a_video, tmp_path / "Scene.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Scene.mp4"]


def test_a_pdf_cut_short_by_a_full_disk_leaves_the_earlier_one(tmp_path, monkeypatch):
    from PIL import Image

    pages = []
    for i in range(3):
        pages.append(tmp_path / f"{i}.png")
        Image.new("RGB", (32, 18), (i * 80, 0, 0)).save(pages[-1])
    out = tmp_path / "out"
    out.mkdir()
    (out / "lecture.pdf").write_bytes(b"%PDF an earlier, finished lecture")
    real_open, saved = Image.open, []

    def open_until_full(path, *a, **k):
        saved.append(path)
        if len(saved) == 3:  # the third page finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", str(out / ".lecture.pdf.partial"))
        return real_open(path, *a, **k)

    monkeypatch.setattr(Image, "open", open_until_full)
    with pytest.raises(OSError) as e:
        r.write_pdf(pages, out / "lecture.pdf")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["lecture.pdf"]
    assert (out / "lecture.pdf").read_bytes() == b"%PDF an earlier, finished lecture"
    monkeypatch.setattr(Image, "open", real_open)
    r.write_pdf(pages, out / "lecture.pdf")
    assert (out / "lecture.pdf").read_bytes().startswith(b"%PDF-1.4") and sorted(p.name for p in out.iterdir()) == ["lecture.pdf"]
