"""`sftconv inspect --html`: the page's DOM marks exactly the trained tokens, escapes the data, loads nothing,
and a real browser (headless Chromium) draws the highlight."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import Conversation, Location, Message
from sftconv.inspect.page import TRAINED_CLASS
from sftconv.template import Llama3Template, MaskPolicy

from .conftest import write_jsonl

HOSTILE = ('<script>alert("x")</script><img src=x onerror=alert(1)> &amp; </pre><style>*{display:none}</style>'
           "<a href='https://example.com'>link</a>")
MESSAGES = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": f"Is this safe? {HOSTILE} 東京 🎌"},
    {"role": "assistant", "content": f"Yes: {HOSTILE} stays text. 東京 🎌"},
    {"role": "user", "content": "And <|eot_id|> typed?"},
    {"role": "assistant", "content": "Ordinary text too."},
]
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "div", "section", "h2", "pre", "span"}
HIGHLIGHT = (0xAC, 0xEE, 0xBB)  # `.t.trained` background in page.STYLE


class PageParser(HTMLParser):
    """Every tag and attribute, and each token span's classes, ids and text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tokens: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "span" and "data-ids" in attributes:
            self._open = {"classes": attributes["class"].split(), "ids": list(map(int, attributes["data-ids"].split())),
                          "title": attributes["title"], "text": ""}
            self.tokens.append(self._open)

    def handle_endtag(self, tag):
        if tag == "span":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def write_page(tmp_path, policy: str = "assistant"):
    source = write_jsonl(tmp_path / "chat.jsonl", [{"messages": MESSAGES}])
    page = tmp_path / f"page-{policy}.html"
    result = CliRunner().invoke(main, ["inspect", str(source), "--html", str(page), "--train-on", policy])
    assert result.exit_code == 0 and result.stderr == f"wrote 1 sample to {page}\n"
    return page


def test_trained_tokens_and_only_they_carry_the_highlight_class(tmp_path, tokenizer):
    parser = PageParser()
    parser.feed(write_page(tmp_path).read_text(encoding="utf-8"))
    conversation = Conversation(tuple(Message(m["role"], m["content"]) for m in MESSAGES), Location("x"))
    sample = Llama3Template(tokenizer, MaskPolicy.ASSISTANT).render(conversation)

    assert [i for token in parser.tokens for i in token["ids"]] == sample.input_ids
    position = 0
    for token in parser.tokens:
        mask = sample.loss_mask[position:position + len(token["ids"])]
        assert len(set(mask)) == 1
        assert (TRAINED_CLASS in token["classes"]) == bool(mask[0]), token
        assert token["title"].startswith(f"token {position} · id {token['ids'][0]} · ") or len(token["ids"]) > 1
        position += len(token["ids"])
    assert sum(TRAINED_CLASS in t["classes"] for t in parser.tokens) > 10
    assert "".join(t["text"] for t in parser.tokens) == tokenizer.decode(sample.input_ids)
    split = [t for t in parser.tokens if len(t["ids"]) > 1]  # 東京 🎌: characters split across tokens, kept whole
    assert split and all("\ufffd" not in t["text"] for t in split) and split[0]["title"].startswith("tokens ")


def test_data_markup_is_escaped_and_nothing_is_loaded(tmp_path):
    html = write_page(tmp_path).read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(html)
    assert {tag for tag, _ in parser.tags} <= ALLOWED_TAGS
    assert [tag for tag, _ in parser.tags].count("style") == 1 and [tag for tag, _ in parser.tags].count("pre") == 1
    for _, attributes in parser.tags:
        assert not {"src", "href", "onerror", "onload"} & set(attributes)
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "".join(t["text"] for t in parser.tokens).count(HOSTILE) == 2  # shown as the text it is
    head = html[:html.index("<body>")]  # the only markup that is ours alone: no stylesheet may fetch anything
    assert "url(" not in head and "@import" not in head and "//" not in head
    assert "default-src 'none'" in html


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def screenshot(browser: str, page, tmp_path):
    """Render the page in headless Chromium and return the PNG as a Pillow image."""
    from PIL import Image

    png = page.with_suffix(".png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--hide-scrollbars",
                    "--force-color-profile=srgb", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={png}", "--window-size=1000,700", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return Image.open(png).convert("RGB")


def near(color, target, tolerance=3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, target))


def test_chromium_draws_the_trained_text_highlighted(tmp_path):
    browser = chromium()
    shots = {policy: screenshot(browser, write_page(tmp_path, policy), tmp_path) for policy in ("last", "all")}
    highlighted = {}
    for policy, image in shots.items():
        colors = image.getcolors(1 << 20)
        assert len(colors) > 20 and max(count for count, _ in colors) < 0.95 * image.width * image.height
        highlighted[policy] = sum(count for count, color in colors if near(color, HIGHLIGHT))
    # `last` trains one short answer (and the legend's swatch); `all` nearly the whole sample.
    assert highlighted["last"] > 500
    assert highlighted["all"] > 5 * highlighted["last"]
