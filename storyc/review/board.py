"""What the board shows, and writing it: a card per scene, per cut in order.

Stage: review. In: a `Compilation`, its `Plan`, `storyc.lock`, the store, and (review
mode) what changed since a git revision (`storyc.review.since`). Out: a `Board` (plain
data for `storyc.review.page`) and, from `write_board`, `renders/board.html` with its
thumbnails in `renders/board_files/`. I/O: reads the store and the project's files;
thumbnails through `storyc.review.thumbs`; writes under `renders/` only.

Images beside the page are hard links to the store's thumbnail objects (copies across
file systems), named by digest: a board that did not change writes nothing but the page,
and the folder is a real folder of real files, so it can be published as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from storyc.base.diagnostics import Diagnostic, Severity, render
from storyc.base.fsio import atomic_write
from storyc.plan import pricing
from storyc.plan.planner import Plan, ScenePlan
from storyc.resolve.model import Input, LocalFile, Project, RemoteFile, Scene, SceneOutput
from storyc.review.thumbs import PARTS, ThumbMaker
from storyc.state.lockfile import LockFile, SceneEntry
from storyc.state.store import Store

if TYPE_CHECKING:
    from storyc.compiler import Compilation
    from storyc.review.since import SceneChange, Since

RENDERS = "renders"
PAGE = "board.html"
FILES = "board_files"
STATUS_TEXT = {
    "up-to-date": "up to date",
    "render": "will render",
    "waiting": "will render",
    "blocked": "blocked",
}


@dataclass(frozen=True)
class Thumb:
    """One picture on the page. `src` is relative to the page (None: no picture, say why
    in `missing`); `href` where a click goes (a video, another card)."""

    label: str
    src: str | None = None
    href: str | None = None
    missing: str | None = None


@dataclass
class Take:
    number: int
    picked: bool
    thumb: Thumb


@dataclass
class Card:
    name: str
    status: str  # the planner's: up-to-date, render, waiting, blocked
    status_text: str
    reasons: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)  # rendered, with excerpts
    frames: list[Thumb] = field(default_factory=list)  # the picked take: first, middle, last
    written: str = ""  # the prompt as written
    mentions: list[tuple[int, int]] = field(default_factory=list)  # offsets into `written`
    sent: str = ""  # the prompt as sent
    inputs: list[Thumb] = field(default_factory=list)
    duration: str = ""
    backend: str = ""
    cost: str = ""
    takes: list[Take] = field(default_factory=list)
    video: str | None = None  # renders/<scene>.mp4, relative to the page
    previous: bool = False  # the pictures are the last render, from before a change
    change: SceneChange | None = None  # review mode
    old_frames: list[Thumb] = field(default_factory=list)  # review mode: as of REV


@dataclass
class Section:
    key: str  # unique per page, used in element ids
    title: str
    scenes: list[str]
    player: str | None = None  # the assembled cut, relative to the page
    running_time: str = ""


@dataclass
class Board:
    project: str
    backend: str
    sections: list[Section]
    cards: dict[str, Card]
    diagnostics: list[str]  # problems that belong to no scene (or a project that did not load)
    counts: dict[str, int]
    total: str
    since: Since | None = None
    removed: list[str] = field(default_factory=list)  # review mode: scenes gone since REV
    failed_thumbs: int = 0


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g} s"


class _Links:
    """Thumbnail objects linked beside the page, by digest."""

    def __init__(self, store: Store, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.used: set[str] = set()
        self._made_folder = False

    def src(self, digest: str) -> str:
        name = f"{digest[7:31]}.jpg"
        if name not in self.used:
            self.used.add(name)
            target = self.folder / name
            if not os.path.exists(target):
                if not self._made_folder:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._made_folder = True
                src = self.store.object_file(digest)
                tmp = self.folder / f".{name}.{os.getpid()}.tmp"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                try:
                    os.link(src, tmp)
                except OSError:  # another file system, or no hard links here
                    shutil.copyfile(src, tmp)
                os.replace(tmp, target)
        return f"{FILES}/{name}"

    def prune(self) -> None:
        """Remove pictures no card uses any more (only files this module names)."""
        if not self.folder.is_dir():
            return
        for p in self.folder.iterdir():
            if p.suffix == ".jpg" and len(p.stem) == 24 and p.name not in self.used:
                with contextlib.suppress(OSError):
                    p.unlink()


def _owners(project: Project) -> list[tuple[str, int, str | None]]:
    """(file, offset, scene or None) of every declaration, sorted: a diagnostic belongs
    to the declaration that starts last before it."""
    marks: list[tuple[str, int, str | None]] = []
    for a in project.assets.values():
        marks.append((a.span.file, a.span.start, None))
    for e in project.elements.values():
        marks.append((e.span.file, e.span.start, None))
    for c in project.cuts.values():
        marks.append((c.span.file, c.span.start, None))
    for s in project.scenes.values():
        marks.append((s.span.file, s.span.start, s.name))
    return sorted(marks, key=lambda m: (m[0], m[1]))


def _scene_of(diag: Diagnostic, marks: list[tuple[str, int, str | None]]) -> str | None:
    if diag.span is None:
        return None
    owner = None
    for file, start, scene in marks:
        if file == diag.span.file and start <= diag.span.start:
            owner = scene
        elif file == diag.span.file and start > diag.span.start:
            break
    return owner


@dataclass
class BoardInputs:
    """Everything `collect` reads, gathered by the caller (the command or watch)."""

    comp: Compilation
    plan: Plan
    lock: LockFile
    store: Store
    root: Path
    since: Since | None = None


def collect(src: BoardInputs, *, thumbs: ThumbMaker | None = None) -> Board:
    """The board's data; makes the thumbnails it needs that are not in the store yet."""
    comp, plan, lock, store, root = src.comp, src.plan, src.lock, src.store, src.root
    renders = root / RENDERS
    maker = thumbs or ThumbMaker(store)
    links = _Links(store, renders / FILES)
    project = comp.project
    scenes: dict[str, Scene] = dict(project.scenes) if project else {}
    names = list(plan.order) + [n for n in scenes if n not in plan.scenes]

    # -- what needs a thumbnail: picked and other takes, inputs, and (review) old outputs
    videos: list[str] = []
    files: list[tuple[str, str]] = []
    for name in names:
        entry = lock.table(plan.backend).get(name)  # paid renders or previews
        sp = plan.scenes.get(name)
        videos.extend(_take_outputs(sp, entry, store)[0].values())
        sc = scenes.get(name)
        if sc is not None:
            for _, inp in _inputs_of(sc, project):
                f = _file_of(inp, plan, store)
                if f is not None:
                    files.append(f)
        change = src.since.changes.get(name) if src.since else None
        if change is not None and change.old_output and store.has(change.old_output):
            videos.append(change.old_output)
    maker.make(videos, files)

    # -- diagnostics by scene
    by_scene: dict[str, list[str]] = {}
    loose: list[str] = []
    marks = _owners(project) if project else []
    for d in comp.diagnostics:
        if d.severity is Severity.NOTE:
            continue
        owner = _scene_of(d, marks) if project else None
        (by_scene.setdefault(owner, []) if owner else loose).append(render(d, comp.sources))

    cards: dict[str, Card] = {}
    for name in names:
        cards[name] = _card(name, scenes.get(name), src, maker, links, by_scene.get(name, []))
        if name not in plan.scenes:  # in the story, but nothing was planned for it
            cards[name].status, cards[name].status_text = "blocked", "blocked"

    # -- sections: each cut in order, then the scenes in no cut
    sections: list[Section] = []
    in_cut: set[str] = set()
    if project is not None:
        for cut in project.cuts.values():
            members = [s for s, _ in cut.scenes if s in cards]
            in_cut.update(members)
            player = renders / f"{cut.name}.mp4"
            running = sum((plan.scenes[s].duration or 0.0) for s in members if s in plan.scenes)
            sections.append(
                Section(
                    key=f"cut-{cut.name}",
                    title=f"cut {cut.name}",
                    scenes=members,
                    player=quote(player.name) if player.exists() else None,
                    running_time=_seconds(round(running, 2)) if running else "",
                )
            )
    rest = [n for n in names if n not in in_cut]
    if rest:
        title = "scenes in no cut" if sections else "scenes"
        sections.append(Section(key="no-cut", title=title, scenes=rest))
    links.prune()

    counts: dict[str, int] = {}
    for c in cards.values():
        counts[c.status_text] = counts.get(c.status_text, 0) + 1
    return Board(
        project=project.name if project else root.name,
        backend=plan.backend,
        sections=sections,
        cards=cards,
        diagnostics=loose,
        counts=counts,
        total=_total(plan),
        since=src.since,
        removed=list(src.since.removed) if src.since else [],
        failed_thumbs=len(maker.failed),
    )


def _total(plan: Plan) -> str:
    if plan.backend in pricing.FREE_BACKENDS:
        return "free (preview)"
    text = pricing.format_usd(plan.known_total)
    if plan.unknown_count:
        text += f" + {plan.unknown_count} unknown"
    return text + " to render"


def _take_outputs(
    sp: ScenePlan | None, entry: SceneEntry | None, store: Store
) -> tuple[dict[int, str], bool]:
    """Output digest of each take whose video is in the store, and whether they are the
    current ones. With no current output (the scene will render, or cannot), what the lock
    file last recorded, if still stored: the page shows it as the previous render."""
    out: dict[int, str] = {}
    if sp is not None:
        for take, key in sp.keys.items():
            rec = store.lookup_render(key)
            if rec is not None and store.has(rec.output):
                out[take] = rec.output
    if out or entry is None:
        return out, True
    for t in entry.takes:
        if t.output and store.has(t.output):
            out[t.take] = t.output
    return out, False


def _inputs_of(scene: Scene, project: Project | None) -> list[tuple[str, Input]]:
    """(label, input) of every input the scene uses, with the writer's names."""
    out: list[tuple[str, Input]] = []

    def named(what: str, inp: Input) -> str:
        # another scene's output is labelled by what it is (see _input_thumb)
        if inp.name and not isinstance(inp.source, SceneOutput):
            return f"{what} @{inp.name}"
        return what

    uses = scene.inputs(
        project.elements if project else None
    )  # the video last on a card, after the elements
    for use in sorted(uses, key=lambda u: u.role in ("edited video", "reference video")):
        inp = use.input
        if use.role == "element":
            what = f"element @{use.element}"
            out.append((what if use.angle == 1 else f"{what}, angle {use.angle}", inp))
        elif use.role in ("edited video", "reference video"):
            out.append(
                (named("edits" if use.role == "edited video" else "video reference", inp), inp)
            )
        else:
            out.append(
                (named("reference" if use.role == "reference image" else use.role, inp), inp)
            )
    return out


def _upstream_output(scene: str, plan: Plan) -> str | None:
    sp = plan.scenes.get(scene)
    return sp.output if sp is not None else None


def _file_of(inp: Input, plan: Plan, store: Store) -> tuple[str, str] | None:
    """(digest, path) of the file an input shows, if there is one on this machine."""
    src = inp.source
    if isinstance(src, LocalFile):
        return src.digest, src.abs_path
    if isinstance(src, SceneOutput) and src.part != "video":
        video = _upstream_output(src.scene, plan)
        what = src.part if src.part != "frame" else f"frame@{float(src.at or 0.0):g}"
        frame = store.lookup_derived(video, what) if video else None
        if frame is not None:
            return frame, store.object_file(frame)
    return None


def _card(
    name: str,
    scene: Scene | None,
    src: BoardInputs,
    maker: ThumbMaker,
    links: _Links,
    diagnostics: list[str],
) -> Card:
    plan, store, lock = src.plan, src.store, src.lock
    sp = plan.scenes.get(name)
    status = sp.status if sp is not None else "blocked"
    card = Card(name, status, STATUS_TEXT[status], diagnostics=diagnostics)
    card.backend = plan.backend
    entry = lock.table(plan.backend).get(name)  # paid renders or previews
    if sp is not None:
        if sp.status == "blocked":
            card.reasons = [sp.blocked or "cannot be built"]
        elif sp.status == "waiting":
            card.reasons = [f"after {', '.join(sp.waiting_on)} renders"] + [
                c.message for c in sp.reasons if c.kind != "upstream"
            ]
        elif sp.status == "render":
            card.reasons = [c.message for c in sp.reasons]
    req = sp.request if sp is not None else None
    if scene is not None:
        card.written = scene.prompt
        card.mentions = [(m.start, m.end) for m in scene.mentions]
    card.sent = req.prompt if req is not None else (entry.prompt if entry else "")
    duration = sp.duration if sp is not None and sp.duration else None
    if duration is None and req is not None and req.duration:
        duration = float(req.duration)
    card.duration = _seconds(duration)

    # cost: what was paid for the picked take, or what rendering will cost
    if sp is not None and sp.will_render:
        card.cost = pricing.format_estimate(sp.estimate)
    elif entry is not None and entry.backend not in pricing.FREE_BACKENDS:
        paid = sum((t.cost or Decimal(0) for t in entry.takes), Decimal(0))
        card.cost = f"{pricing.format_usd(paid)} paid"
    elif plan.backend in pricing.FREE_BACKENDS:
        card.cost = "free"

    outputs, current = _take_outputs(sp, entry, store)
    card.previous = bool(outputs) and not current
    # the user's pick, rendered or not: another take never stands in for it (an entry
    # written while the picked take failed holds only its siblings)
    picked = entry.picked if entry is not None else 1
    renders = src.root / RENDERS
    if (renders / f"{name}.mp4").exists() and picked in outputs:
        card.video = quote(f"{name}.mp4")
    card.frames = _frames(outputs.get(picked), maker, links, card.video, sp)
    n_takes = max([sp.takes if sp else 1, *outputs]) if outputs or sp else 1
    if n_takes > 1:
        for t in range(1, n_takes + 1):
            digest = outputs.get(t)
            thumbs = maker.video(digest) if digest else None
            href = (
                quote(f"{name}.take{t}.mp4") if (renders / f"{name}.take{t}.mp4").exists() else None
            )
            label = f"take {t}" + (" (picked)" if t == picked else "")
            if thumbs is not None:
                thumb = Thumb(label, links.src(thumbs["middle"]), href)
            else:
                thumb = Thumb(
                    label, missing="not rendered yet" if digest is None else "no thumbnail"
                )
            card.takes.append(Take(t, t == picked, thumb))

    if scene is not None:
        for label, inp in _inputs_of(scene, src.comp.project):
            card.inputs.append(_input_thumb(label, inp, plan, store, maker, links))

    change = src.since.changes.get(name) if src.since else None
    if change is not None:
        card.change = change
        if change.old_output:
            card.old_frames = _frames(change.old_output, maker, links, None, None)
    return card


def _frames(
    digest: str | None,
    maker: ThumbMaker,
    links: _Links,
    video: str | None,
    sp: ScenePlan | None,
) -> list[Thumb]:
    thumbs = maker.video(digest) if digest else None
    if thumbs is None:
        why = "no thumbnail" if digest and digest in maker.failed else "not rendered yet"
        if sp is not None and sp.status == "blocked" and not digest:
            why = "cannot render"
        return [Thumb(f"{p} frame", missing=why) for p in PARTS]
    return [Thumb(f"{p} frame", links.src(thumbs[p]), video) for p in PARTS]


def _input_thumb(
    label: str, inp: Input, plan: Plan, store: Store, maker: ThumbMaker, links: _Links
) -> Thumb:
    source = inp.source
    if isinstance(source, RemoteFile):
        return Thumb(label, missing=source.url, href=source.url)
    if isinstance(source, SceneOutput):
        part = {"first_frame": "first frame", "last_frame": "last frame", "video": "video"}
        what = part.get(source.part, f"frame at {float(source.at or 0.0):g} s")
        label = f"{label}: {what} of {source.scene}"
        href = f"#scene-{quote(source.scene)}"
        found = _file_of(inp, plan, store)
        thumb = maker.image(found[0]) if found else None
        if thumb is None:
            video = _upstream_output(source.scene, plan)
            vthumbs = maker.video(video) if video else None
            if vthumbs is not None:
                key = {"first_frame": "first", "last_frame": "last"}.get(source.part, "middle")
                thumb = vthumbs[key]
        if thumb is None:
            return Thumb(label, missing="renders first", href=href)
        return Thumb(label, links.src(thumb), href)
    assert isinstance(source, LocalFile)
    label = f"{label} ({source.path})"
    thumb = maker.image(source.digest)
    if thumb is None:
        return Thumb(label, missing=maker.failed.get(source.digest, "no thumbnail"))
    return Thumb(label, links.src(thumb))


def write_board(board_html: str, root: Path) -> Path:
    """Write the page (atomically; not at all when it is already exactly this)."""
    path = root / RENDERS / PAGE
    data = board_html.encode("utf-8")
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return path


def scene_names(board: Board) -> Iterable[str]:
    for section in board.sections:
        yield from section.scenes
