"""The board as HTML: one static page, its style and script inline, nothing from a network.

Stage: review. In: a `Board`. Out: the page's text. Pure: no I/O, no clock (the same board
gives the same bytes, so a rewrite that changes nothing is seen as such).

Every string from the story is escaped: a prompt with `<script>`, quotes or markup is
shown as text. Pictures are plain `<img>` tags with paths relative to the page, so the
page opens from `file://` with no server. Keyboard: Tab moves through cards and links;
`j`/`k` (or `n`/`p`) go to the next/previous card, `/` to the filter box; Enter on a card
plays its video. When the page is served by `storyc board --serve` it reloads itself after
each rewrite (it asks the server; from `file://` it asks nothing).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from html import escape
from urllib.parse import quote

from storyc.review.board import Board, Card, Section, Thumb

_CSS = """
:root{--bg:#fafaf8;--fg:#1d1d1f;--muted:#5f6368;--line:#d9d9d6;--card:#fff;
--ok:#1e7b3a;--render:#8a5a00;--blocked:#b3261e;--mark:#fff0b3;--focus:#1a73e8}
@media (prefers-color-scheme:dark){:root{--bg:#161618;--fg:#ececec;--muted:#a0a0a5;
--line:#3a3a3e;--card:#202024;--ok:#6fcf8f;--render:#f0b64f;--blocked:#ff8a80;
--mark:#5c4a00;--focus:#8ab4f8}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
header{padding:12px 16px;border-bottom:1px solid var(--line);position:sticky;top:0;
background:var(--bg);z-index:2}
header h1{font-size:1.25rem;margin:0 0 4px}
.summary{color:var(--muted);font-size:.9rem}
.tools{display:flex;gap:8px;flex-wrap:wrap;align-items:center;margin-top:8px}
.tools input[type=search]{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;
background:var(--card);color:var(--fg);min-width:12em}
nav a{margin-right:10px}
main{padding:8px 16px 40px}
a{color:var(--focus)}
h2{font-size:1.1rem;margin:24px 0 8px}
h2 small{color:var(--muted);font-weight:normal}
video.cut{width:100%;max-width:960px;background:#000;border-radius:8px;display:block}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px;
min-width:0}
.card:focus{outline:3px solid var(--focus);outline-offset:2px}
.card.changed{border-left:5px solid var(--render)}
.card h3{margin:0;font-size:1.05rem;display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.card h3 a{color:inherit;text-decoration:none}
.st{font-size:.8rem;font-weight:600;padding:1px 8px;border-radius:99px;border:1px solid}
.st-up-to-date{color:var(--ok)}.st-render,.st-waiting{color:var(--render)}
.st-blocked{color:var(--blocked)}
.frames{display:grid;grid-template-columns:repeat(3,1fr);gap:4px;margin:8px 0}
.thumb{margin:0;min-width:0}
.thumb img{width:100%;height:auto;display:block;border-radius:4px;background:#0002;
aspect-ratio:16/9;object-fit:cover}
.thumb figcaption{font-size:.75rem;color:var(--muted);overflow-wrap:anywhere}
.none{display:flex;align-items:center;justify-content:center;aspect-ratio:16/9;
border:1px dashed var(--line);border-radius:4px;font-size:.75rem;color:var(--muted);
text-align:center;padding:4px;overflow-wrap:anywhere}
.prev{font-size:.75rem;color:var(--render)}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:6px 0;font-size:.85rem}
dt{color:var(--muted)}dd{margin:0;min-width:0}
.prompt{white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
.sent{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;white-space:pre-wrap;
overflow-wrap:anywhere;margin:0;color:var(--muted)}
mark{background:var(--mark);color:inherit;border-radius:3px;padding:0 1px}
.inputs,.takes{display:grid;grid-template-columns:repeat(auto-fill,minmax(96px,1fr));gap:6px;
margin:4px 0}
.take.picked img,.take.picked .none{outline:3px solid var(--ok);outline-offset:1px}
.reasons{margin:4px 0;padding-left:18px;font-size:.85rem}
pre.diag{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75rem;background:#0001;
padding:6px;border-radius:6px;margin:6px 0}
.diff{font-size:.85rem;white-space:pre-wrap;overflow-wrap:anywhere}
del{background:#ffd7d5;color:#5a0000}ins{background:#d3f5d9;color:#003a10;text-decoration:none}
@media (prefers-color-scheme:dark){del{background:#5a1d1d;color:#ffd7d5}
ins{background:#1d4a28;color:#d3f5d9}}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:6px}
.sbs h4{margin:2px 0;font-size:.75rem;color:var(--muted)}
.sbs .frames{grid-template-columns:repeat(3,1fr)}
.help{font-size:.8rem;color:var(--muted)}
[hidden]{display:none!important}
@media (max-width:520px){main{padding:6px}.cards{grid-template-columns:1fr}
header{position:static}}
"""

_JS = """
(function(){
var cards=[].slice.call(document.querySelectorAll('.card'));
function visible(){return cards.filter(function(c){return !c.hidden;});}
function go(d){var v=visible();if(!v.length)return;var i=v.indexOf(document.activeElement);
var n=i<0?(d>0?0:v.length-1):Math.max(0,Math.min(v.length-1,i+d));v[n].focus();
v[n].scrollIntoView({block:'nearest'});}
var filter=document.getElementById('filter');
var only=document.getElementById('changed');
function apply(){var q=(filter.value||'').toLowerCase();var oc=only&&only.checked;
cards.forEach(function(c){var t=c.getAttribute('data-search');
c.hidden=(q&&t.indexOf(q)<0)||(oc&&!c.classList.contains('changed'));});}
filter.addEventListener('input',apply);if(only)only.addEventListener('change',apply);
document.addEventListener('keydown',function(e){
if(e.target.tagName==='INPUT'){if(e.key==='Escape'){e.target.blur();}return;}
if(e.ctrlKey||e.metaKey||e.altKey)return;
if(e.key==='j'||e.key==='n'){go(1);e.preventDefault();}
else if(e.key==='k'||e.key==='p'){go(-1);e.preventDefault();}
else if(e.key==='/'){filter.focus();e.preventDefault();}
else if(e.key==='Enter'&&e.target.classList.contains('card')){
var a=e.target.querySelector('a.play');if(a){a.click();e.preventDefault();}}});
if(location.protocol==='http:'){var v=document.documentElement.getAttribute('data-version');
setInterval(function(){fetch('__board_version',{cache:'no-store'}).then(function(r){
return r.ok?r.text():v;}).then(function(t){if(t&&t!==v)location.reload();})
.catch(function(){});},1000);}
})();
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def _thumb(t: Thumb, cls: str = "thumb") -> str:
    label = _e(t.label)
    if t.src is not None:
        img = f'<img src="{_e(t.src)}" alt="{label}" decoding="async">'
    else:
        img = f'<div class="none">{_e(t.missing or "no picture")}</div>'
    if t.href is not None:
        img = f'<a href="{_e(t.href)}">{img}</a>'
    return f'<figure class="{cls}">{img}<figcaption>{label}</figcaption></figure>'


_PLACEHOLDER = re.compile(r"@(?:image|video|element)_\d+|<<<\w+>>>")


def _highlight(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for a, b in sorted(spans):
        if a < pos or b > len(text):
            continue
        out.append(_e(text[pos:a]))
        out.append(f"<mark>{_e(text[a:b])}</mark>")
        pos = b
    out.append(_e(text[pos:]))
    return "".join(out)


def word_diff(old: str, new: str) -> str:
    """`old` → `new` as HTML: removed words in <del>, added ones in <ins>."""
    a, b = re.findall(r"\s+|\S+", old), re.findall(r"\s+|\S+", new)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_e("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_e(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_e(''.join(b[j1:j2]))}</ins>")
    return "".join(out)


def _card(c: Card, section: Section, first: bool) -> str:
    anchor = f"scene-{c.name}" if first else f"{section.key}--{c.name}"
    search = " ".join([c.name, c.status_text, c.written or c.sent]).lower()
    classes = "card" + (" changed" if c.change is not None else "")
    parts = [
        f'<article class="{classes}" id="{_e(anchor)}" tabindex="0" '
        f'data-search="{_e(search)}" aria-label="{_e(c.name + ", " + c.status_text)}">'
    ]
    play = f' · <a class="play" href="{_e(c.video)}">play</a>' if c.video else ""
    parts.append(
        f'<h3><a href="#scene-{quote(c.name)}">{_e(c.name)}</a>'
        f'<span class="st st-{_e(c.status)}">{_e(c.status_text)}</span></h3>'
    )
    parts.append(
        f'<div class="summary">{_e(" · ".join(x for x in (c.duration, c.backend, c.cost) if x))}'
        f"{play}</div>"
    )
    if c.reasons:
        parts.append(
            '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in c.reasons) + "</ul>"
        )
    parts.extend(f'<pre class="diag">{_e(d)}</pre>' for d in c.diagnostics)
    if c.change is not None:
        ch = c.change
        parts.append('<div class="review"><ul class="reasons">')
        parts.extend(f"<li>{_e(m)}</li>" for m in ch.changes)
        parts.append("</ul>")
        if ch.old_prompt != ch.new_prompt and ch.kind != "new":
            parts.append(f'<p class="diff">{word_diff(ch.old_prompt, ch.new_prompt)}</p>')
        if c.old_frames:
            parts.append(
                '<div class="sbs"><div><h4>before</h4><div class="frames">'
                + "".join(_thumb(t) for t in c.old_frames)
                + '</div></div><div><h4>now</h4><div class="frames">'
                + "".join(_thumb(t) for t in c.frames)
                + "</div></div></div>"
            )
        parts.append("</div>")
    if c.previous:
        parts.append('<div class="prev">the last render, from before the change:</div>')
    parts.append('<div class="frames">' + "".join(_thumb(t) for t in c.frames) + "</div>")
    rows = []
    if c.written:
        rows.append(
            f'<dt>prompt</dt><dd><p class="prompt">{_highlight(c.written, c.mentions)}</p></dd>'
        )
    if c.sent and c.sent != c.written:
        sent = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(c.sent)]
        rows.append(f'<dt>as sent</dt><dd><p class="sent">{_highlight(c.sent, sent)}</p></dd>')
    if rows:
        parts.append("<dl>" + "".join(rows) + "</dl>")
    if c.inputs:
        parts.append(
            '<div class="help">inputs</div><div class="inputs">'
            + "".join(_thumb(t) for t in c.inputs)
            + "</div>"
        )
    if c.takes:
        parts.append(
            '<div class="help">takes</div><div class="takes">'
            + "".join(
                _thumb(t.thumb, "thumb take" + (" picked" if t.picked else "")) for t in c.takes
            )
            + "</div>"
        )
    parts.append("</article>")
    return "".join(parts)


def _section(s: Section, board: Board, seen: set[str]) -> str:
    count = f"{len(s.scenes)} scene{'s' if len(s.scenes) != 1 else ''}"
    extra = f" · {s.running_time}" if s.running_time else ""
    out = [f'<section id="{_e(s.key)}"><h2>{_e(s.title)} <small>{count}{extra}</small></h2>']
    if s.player is not None:
        out.append(f'<video class="cut" controls preload="metadata" src="{_e(s.player)}"></video>')
    out.append('<div class="cards">')
    for name in s.scenes:
        out.append(_card(board.cards[name], s, name not in seen))
        seen.add(name)
    out.append("</div></section>")
    return "".join(out)


def render_page(board: Board) -> str:
    """The whole page, stamped with a digest of itself (`data-version`): the live-reload
    check compares it, and an unchanged board gives the same bytes."""
    counts = " · ".join(f"{n} {k}" for k, n in sorted(board.counts.items()))
    head = [
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(board.project)} · storyboard</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(board.project)}</h1>",
        f'<div class="summary">{_e(counts or "no scenes")} · backend {_e(board.backend)} · '
        f"{_e(board.total)}</div>",
    ]
    if board.since is not None:
        n = len(board.since.changes)
        head.append(
            f'<div class="summary">review: {n} scene{"s" if n != 1 else ""} changed since '
            f"<code>{_e(board.since.rev)}</code> ({_e(board.since.commit[:12])})"
            + (f"; removed: {_e(', '.join(board.removed))}" if board.removed else "")
            + "</div>"
        )
    nav = "".join(f'<a href="#{_e(s.key)}">{_e(s.title)}</a>' for s in board.sections)
    head.append(
        '<div class="tools"><input id="filter" type="search" placeholder="filter scenes ( / )" '
        'aria-label="filter scenes">'
        + (
            '<label><input id="changed" type="checkbox"> changed only</label>'
            if board.since is not None
            else ""
        )
        + f"<nav>{nav}</nav>"
        + '<span class="help">j/k: next/previous scene · Enter: play</span></div></header><main>'
    )
    body = []
    if board.diagnostics:
        body.append(
            "<section><h2>problems</h2>"
            + "".join(f'<pre class="diag">{_e(d)}</pre>' for d in board.diagnostics)
            + "</section>"
        )
    seen: set[str] = set()
    body.extend(_section(s, board, seen) for s in board.sections)
    if not board.sections:
        body.append("<p>No scenes to show.</p>")
    rest = "".join(head) + "".join(body) + f"</main><script>{_JS}</script></body></html>\n"
    version = hashlib.sha256(rest.encode("utf-8")).hexdigest()[:16]
    return f'<!doctype html>\n<html lang="en" data-version="{version}">' + rest
