"""Resolver: names, includes, layers and origins, inputs, mentions, templates, files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from storyc.base.diagnostics import Diagnostics
from storyc.base.hashing import DigestCache, digest_file
from storyc.compiler import frontend
from storyc.lang.loader import load
from storyc.media import ffmpeg as media
from storyc.resolve.model import LocalFile, Project, RemoteFile, SceneOutput
from storyc.resolve.resolver import resolve
from storyc.resolve.templating import Templates


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {".png": d / "s.png", ".jpg": d / "s.jpg", ".mp4": d / "s.mp4"}
    media.make_test_image(out[".png"], 640, 480)
    media.make_test_image(out[".jpg"], 640, 480)
    media.make_test_video(out[".mp4"], width=1280, height=720, duration=5.0)
    return out


def make(
    root: Path, files: dict[str, str], samples: dict[str, Path], media_files: tuple[str, ...] = ()
) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, "utf-8")
    for rel in media_files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples[p.suffix], p)
    return root


def ok(path: Path) -> Project:
    project, diags, _ = frontend(path)
    assert project is not None
    assert not diags.has_errors, [f"{d.code} {d.message}" for d in diags]
    return project


FILM = {
    "main.story": """
project "Film" { quality = "pro"  aspect = "16:9"  backend = "inference"  jobs = 3
                 base_url = "http://127.0.0.1:8765"  max_cost = 12.5 }
include "lib/cast.story"
let style = "neon"
let cam = { lens = "35mm" }
image market "assets/market.jpg"
video alley "assets/alley.mp4"
defaults { duration = 5  watermark = true }
style noir { quality = "std"  vars { mood = "dark" } }
style night : noir { takes = 2  vars { time = "night" } }

scene arrival : night {
  refs   = ["assets/extra.png", market]
  prompt = "@mei and @market and @lantern, {{ style }} {{ mood }} {{ time }} {{ cam.lens }} @mei"
  vars { mood = "bright" }
}
scene lanterns {
  start    = arrival.last_frame
  end      = arrival.first_frame
  refs     = [arrival.frame(2.5), "https://cdn.example.com/x.png"]
  elements = [robot]
  prompt   = "@arrival ends, @mei appears"
  target   = "inference/video-o1@v1"
}
scene rain { edit = alley  keep_sound = false  prompt = "rain on @alley" }
scene chase { motion = arrival  prompt = "chase like @arrival"  duration = 10 }
cut final = [arrival, lanterns, rain, chase]
""",
    "lib/cast.story": """
image lantern "../assets/lantern.png"
element mei { frontal = "mei.png"  refs = [lantern]  description = "a woman" }
element robot { frontal = "robot.png" }
""",
}
FILM_MEDIA = (
    "assets/market.jpg",
    "assets/alley.mp4",
    "assets/extra.png",
    "assets/lantern.png",
    "lib/mei.png",
    "lib/robot.png",
)


def test_a_whole_film_resolves(tmp_path: Path, samples: dict[str, Path]) -> None:
    p = ok(make(tmp_path, FILM, samples, FILM_MEDIA))
    assert p.name == "Film" and p.entry == "main.story"
    assert p.files == ("main.story", "lib/cast.story")
    assert list(p.scenes) == ["arrival", "lanterns", "rain", "chase"]
    assert p.settings["backend"].value == "inference" and p.settings["jobs"].value == 3
    assert p.settings["base_url"].value == "http://127.0.0.1:8765"
    assert p.settings["max_cost"].value == 12.5
    assert p.variables == {"style": "neon", "cam": {"lens": "35mm"}}

    mei = p.elements["mei"]
    assert isinstance(mei.frontal.source, LocalFile) and mei.frontal.source.path == "lib/mei.png"
    assert [r.name for r in mei.refs] == ["lantern"] and mei.description == "a woman"
    assert mei.span.file == "lib/cast.story"

    a = p.scenes["arrival"]
    assert a.prompt == "@mei and @market and @lantern, neon bright night 35mm @mei"
    assert [m.name for m in a.mentions] == ["mei", "market", "lantern", "mei"]
    for m in a.mentions:
        assert a.prompt[m.start : m.end] == "@" + m.name
    # explicit refs first (inline path, then market), then mentioned-only images
    assert [i.name for i in a.images] == [None, "market", "lantern"]
    assert isinstance(a.images[0].source, LocalFile)
    assert a.images[0].source.path == "assets/extra.png"
    assert [e.name for e in a.elements] == ["mei"]
    assert (a.quality.value, a.quality.origin) == ("std", "style")
    assert (a.aspect and a.aspect.value, a.aspect and a.aspect.origin) == ("16:9", "project")
    assert a.duration is not None and (a.duration.value, a.duration.origin) == (5, "defaults")
    assert (a.takes.value, a.takes.origin) == (2, "style")
    assert (a.watermark.value, a.watermark.origin) == (True, "defaults")
    assert (a.target.value, a.target.origin) == ("inference/video-o1", "builtin")
    assert a.variables == {"mood": "bright", "time": "night"}

    lan = p.scenes["lanterns"]
    assert lan.first_frame is not None and lan.first_frame.source == SceneOutput(
        "arrival", "last_frame"
    )
    assert lan.first_frame.name == "arrival"
    assert lan.end_frame is not None and lan.end_frame.source == SceneOutput(
        "arrival", "first_frame"
    )
    assert lan.images[0].source == SceneOutput("arrival", "frame", 2.5)
    assert lan.images[1].source == RemoteFile("https://cdn.example.com/x.png", "image")
    assert [e.name for e in lan.elements] == ["robot", "mei"]
    assert (lan.target.value, lan.target.origin) == ("inference/video-o1@v1", "scene")
    assert lan.upstream() == ("arrival",)

    rain = p.scenes["rain"]
    assert rain.video is not None and rain.video.mode == "base"
    assert rain.video.keep_sound is not None and rain.video.keep_sound.value is False
    src = rain.video.input.source
    assert isinstance(src, LocalFile) and src.kind == "video" and src.path == "assets/alley.mp4"
    assert src.digest == digest_file(tmp_path / "assets/alley.mp4")[0]
    chase = p.scenes["chase"]
    assert chase.video is not None and chase.video.mode == "feature"
    assert chase.video.input.source == SceneOutput("arrival", "video")
    assert chase.video.keep_sound is None
    assert [n for n, _ in p.cuts["final"].scenes] == ["arrival", "lanterns", "rain", "chase"]


def test_mention_spans_point_into_the_source(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {
            "main.story": 'image m "m.png"\nscene s {\n  prompt = """\n    look at\n'
            '      @m now\n    """\n}\n'
        },
        samples,
        ("m.png",),
    )
    project, _, sources = frontend(tmp_path)
    assert project is not None
    (m,) = project.scenes["s"].mentions
    assert (m.span.line, m.span.col) == (5, 7)
    assert sources.texts["main.story"][m.span.start : m.span.end] == "@m"


def test_every_problem_is_reported_in_one_run(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {
            "main.story": """
scene a { prompt = "{{ nope }}"  quality = "best"  takes = 0 }
scene b { prompt = "@ghost"  start = "missing.png"  colour = 1 }
scene c { start = a  prompt = "ok" }
"""
        },
        samples,
    )
    project, diags, _ = frontend(tmp_path)
    assert project is not None  # resolution goes on after errors
    assert sorted(d.code for d in diags) == ["E102", "E105", "E106", "E111", "E121", "E123", "E130"]


def test_syntax_errors_stop_resolution(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {"main.story": 'include "a.story"\nscene x { prompt = "@y" }', "a.story": "scene y {"},
        samples,
    )
    loaded = load(tmp_path)
    diags = Diagnostics()
    assert resolve(loaded, diags) is None
    assert [d.code for d in loaded.diagnostics] == ["E004"]


def test_digest_cache_is_used(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(tmp_path, FILM, samples, FILM_MEDIA)
    for rel in FILM_MEDIA:  # old enough for the cache to trust (it distrusts fresh mtimes)
        os.utime(tmp_path / rel, (1_600_000_000, 1_600_000_000))
    cache = DigestCache()
    frontend(tmp_path, digests=cache)
    assert cache.files_hashed == len(FILM_MEDIA)
    frontend(tmp_path, digests=cache)
    assert cache.files_hashed == len(FILM_MEDIA)


def test_urls_and_base_url(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {
            "main.story": """
project "U" { base_url = "https://api.example.com/" }
image a "https://cdn.example.com/a.jpg"
scene s { refs = [a]  prompt = "x" }
"""
        },
        samples,
    )
    p = ok(tmp_path)
    assert p.assets["a"].source == RemoteFile("https://cdn.example.com/a.jpg", "image")
    assert p.settings["base_url"].value == "https://api.example.com"


def test_extensions_are_matched_whatever_their_case(
    tmp_path: Path, samples: dict[str, Path]
) -> None:
    """`MEI.PNG` is a PNG, and a clip named `.MP4` is a video where an image is wanted."""
    make(
        tmp_path,
        {
            "main.story": """
image mei "assets/MEI.PNG"
image wide "https://cdn.example.com/WIDE.JPG"
video clip "assets/Clip.Mp4"
scene s { refs = [mei, wide]  prompt = "x" }
"""
        },
        samples,
    )
    (tmp_path / "assets").mkdir()
    for upper, sample in (("assets/MEI.PNG", ".png"), ("assets/Clip.Mp4", ".mp4")):
        shutil.copyfile(samples[sample], tmp_path / upper)
    p = ok(tmp_path)
    assert isinstance(p.assets["mei"].source, LocalFile)
    assert p.assets["wide"].source == RemoteFile("https://cdn.example.com/WIDE.JPG", "image")
    (tmp_path / "main.story").write_text(
        'image oops "assets/Clip.Mp4"\nimage far "https://cdn.example.com/FAR.MOV"\n', "utf-8"
    )
    _, diags, _ = frontend(tmp_path)
    errors = [(d.code, d.span.line if d.span else 0) for d in diags if d.is_error]
    assert errors == [("E131", 1), ("E131", 2)]


def test_unknown_target_is_reported(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {"main.story": 'scene s { prompt = "x"  target = "inference/video-o1@v9" }'},
        samples,
    )
    _, diags, _ = frontend(tmp_path)
    assert [d.code for d in diags] == ["E116"]


def test_sandbox_blocks_unsafe_templates(tmp_path: Path, samples: dict[str, Path]) -> None:
    make(
        tmp_path,
        {
            "main.story": 'let s = "x"\nscene a { prompt = "{{ s.__class__.__mro__[1].__subclasses__() }}" }'
        },
        samples,
    )
    _, diags, _ = frontend(tmp_path)
    assert [d.code for d in diags] == ["E122"]


@pytest.mark.parametrize(
    "source",
    [
        "plain text with no template",
        "a {{ s }} b {{n}} c {{ f }} {{ t }} {{ d.k }}",
        "{{s}}{{s}}",
        "x {{ missing }} y",
        "{{ d.missing }}",
        "{{ d.items }}",
        "{% if t %}yes{% endif %} {{ s }}",
        "{{ true }} {{ s }}",
        "{{ l }}",
    ],
)
def test_template_fast_path_means_what_jinja_means(source: str) -> None:
    variables = {"s": "neon", "n": 3, "f": 2.5, "t": True, "d": {"k": "v"}, "l": ["a", 1]}
    fast = Templates().render(source, variables)
    slow_engine = Templates()
    slow = slow_engine._render_jinja(source, variables)
    assert fast.text == slow.text
    assert [p.code for p in fast.problems] == [p.code for p in slow.problems]


@pytest.mark.parametrize(
    "source", ["{{ 'x' * 1000000000 }}", "{{ [1] * 10**9 }}", "{{ 9 ** 999999 }}"]
)
def test_templates_cannot_build_huge_values(source: str) -> None:
    out = Templates().render(source, {})
    assert out.text is None and [p.code for p in out.problems] == ["E143"]


def test_templates_compile_once_per_source() -> None:
    t = Templates()
    src = "{% for i in xs %}{{ i }}{% endfor %}"
    for _ in range(3):
        assert t.render(src, {"xs": [1, 2]}).text == "12"
    assert len(t._compiled) == 1 and t.jinja_renders == 3


def test_line_index_agrees_with_span_from_offsets() -> None:
    from storyc.base.diagnostics import Span
    from storyc.resolve.prompt import LineIndex

    text = 'scene a {\n  prompt = "x @y"\n}\n\n\nlast line without newline'
    index = LineIndex("f", text)
    for start in range(-1, len(text) + 2):
        for end in (start, start + 1, start + 7, len(text) + 3):
            assert index.span(start, end) == Span.from_offsets("f", text, start, end)
