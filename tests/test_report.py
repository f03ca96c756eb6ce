"""The HTML report: a self-contained page per suite, read back with html.parser, then clicked
in headless Chromium (skipped where Chromium, chromedriver or selenium are missing)."""

import base64
import math
import os
import shutil
from html.parser import HTMLParser

import pytest

from genbench.plan.jobs import evaluation_dirname
from genbench.results.boards import build_leaderboards
from genbench.results.report import render_report, write_report
from genbench.results.records import JobRecord, MetricRecord
from genbench.results.store import ResultStore

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "gan<b>&"  # a model label that must come out escaped

#: metric -> {key: higher_is_better (None: no direction)}; ten columns in all.
METRICS = {"fid": {"fid": False}, "kid": {"mean": False},
           "prc": {"precision": True, "recall": True},
           "prdc": {"coverage": True, "density": True}, "recon": {"mse": False},
           "speed": {"samples_per_s": True, "nfe": None, "params": None}}
#: model -> (family, per seed: {column: value}); 'ddpm' lacks recon.mse (an empty cell).
MODELS = {
    "train-data": ("reference", [{"fid.fid": 0.5, "recon.mse": 0.0}]),
    "vae": ("vae", [{"fid.fid": 30.0, "recon.mse": 0.04, "prc.recall": 0.50},
                    {"fid.fid": 30.5, "recon.mse": 0.05, "prc.recall": 0.52},
                    {"fid.fid": 29.5, "recon.mse": 0.06, "prc.recall": 0.51}]),
    "ae": ("autoencoder", [{"fid.fid": 50.0, "recon.mse": 0.02, "prc.recall": 0.30},
                           {"fid.fid": 51.0, "recon.mse": 0.03, "prc.recall": 0.31}]),
    EVIL: ("gan", [{"fid.fid": 40.0, "recon.mse": 0.09, "prc.recall": 0.90},
                   {"fid.fid": 44.0, "recon.mse": 0.08, "prc.recall": 0.80}]),
    "ddpm[sampler=ddim, steps=10]": ("diffusion", [{"fid.fid": 4.5, "prc.recall": 0.7}]),
}


def values(model_values, seed):
    """Every column of METRICS: the given values, the rest made up from the seed."""
    out = []
    for metric, keys in METRICS.items():
        vals = {k: model_values.get(f"{metric}.{k}", 0.1 * (seed + 1) + 0.01 * i)
                for i, k in enumerate(keys)}
        if metric == "recon" and "recon.mse" not in model_values:
            continue
        out.append(MetricRecord(metric, "ok", vals,
                                higher_is_better={k: v for k, v in keys.items() if v is not None},
                                primary=next(iter(keys)), details={"n_samples": 1000}))
    return out


def thumbnail(path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)


def record(dataset, model, seed, family, status="ok", metrics=(), **kw):
    fp = f"{dataset}-{model}-{seed}"
    return JobRecord(fingerprint=fp, config_fingerprint=f"{dataset}-{model}",
                     job_key=f"{dataset}/{model}/seed{seed}", suite="s", dataset=dataset,
                     dataset_name=dataset, model=model, model_name=model, model_family=family,
                     seed=seed, status=status, metrics=list(metrics), **kw)


@pytest.fixture
def store(tmp_path):
    """A digits board of ten columns (reference, five models, one diverged), samples.png for
    every model but 'ae', and a ring8 board; a figure beside the leaderboard files."""
    s = ResultStore(tmp_path / "results.db")
    provenance = {"spec_hash": "abc123", "versions": {"genbench": "0.1.0", "torch": "2.3"},
                  "feature_extractors": {"digits-cnn": "f" * 64}}
    for m, (model, (family, seeds)) in enumerate(MODELS.items()):
        for seed, vals in enumerate(seeds):
            job = record("digits", model, seed, family, metrics=values(vals, seed), device="cpu",
                         num_samples=1000, provenance=provenance, run_dir=f"runs/m{m}/seed{seed}")
            if model != "ae":
                folder = tmp_path / job.run_dir / evaluation_dirname(job.fingerprint)
                thumbnail(folder / "samples.png", (40 * m, 0, 0))
            s.write(job)
    s.write(record("digits", "gone", 0, "gan", status="diverged", provenance=provenance,
                   run_dir="runs/gone"))
    s.write(record("ring8", "ae", 0, "autoencoder", provenance={}, metrics=[
        MetricRecord("recon", "ok", {"mse": 0.5}, higher_is_better={"mse": False}, primary="mse")]))
    thumbnail(tmp_path / "leaderboards" / "s" / "digits-quality-speed.png", (0, 0, 255))
    return s


@pytest.fixture
def boards(store):
    return build_leaderboards(store, primary="recon.mse",
                              descriptions={"fid": "Fréchet distance <to test data>"})


class Page(HTMLParser):
    """The parts of a page the tests read; ``rows`` and ``headers`` are the first table's."""

    def __init__(self, text):
        super().__init__()
        self.doctype, self.title, self.tags = None, "", []
        self.tables = []          # per table: headers [th], rows {model: [td]}; cells are
        self._in, self._cell = [], None  # their attributes plus "text"
        self.feed(text)

    @property
    def rows(self):
        return self.tables[0]["rows"]

    @property
    def headers(self):
        return self.tables[0]["headers"]

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("meta", "img", "input", "link", "br"):
            return
        self._in.append(tag)
        if tag == "table":
            self.tables.append({"headers": [], "rows": {}})
        elif tag == "tr" and "data-model" in attrs:
            self._row = self.tables[-1]["rows"].setdefault(attrs["data-model"], [])
        elif tag in ("td", "th"):
            self._cell = dict(attrs, text="", tag=tag)
            (self._row if tag == "td" else self.tables[-1]["headers"]).append(self._cell)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._in and self._in[-1] == "title":
            self.title += data
        if self._cell is not None:
            self._cell["text"] += data


def cell(page, board, model, column):
    i = 3 + [c.name for c in board.select(full=True)].index(column)
    return page.rows[model][i]


def test_page_is_self_contained_html5(boards, store):
    text = render_report(boards, store, title="Digits & friends")
    page = Page(text)
    assert text.startswith("<!doctype html>") and page.doctype.lower() == "doctype html"
    assert ("meta", {"charset": "utf-8"}) in page.tags
    assert page.title == "Digits & friends" and "<title>Digits &amp; friends</title>" in text
    assert "http://" not in text and "https://" not in text  # no URL at all, so nothing fetched
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe") and not (tag == "script" and "src" in attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
            assert base64.b64decode(attrs["src"].split(",", 1)[1]).startswith(PNG)
        if tag == "a":
            assert attrs["href"].startswith("#")
    # style and script inline, and a figure found beside the leaderboard files
    assert "<style>" in text and "<script>" in text
    assert "Quality against sampling speed" in text and "ring8" in text


def test_every_row_and_column_with_tooltips(boards, store):
    board = boards[("s", "digits")]
    page = Page(render_report(boards, store))
    assert list(page.rows) == board.models and "gone" in page.rows
    assert list(page.tables[1]["rows"]) == boards[("s", "ring8")].models == ["ae"]
    columns = board.select(full=True)
    assert len(columns) == 10
    metric_headers = page.headers[3:3 + len(columns)]
    for c, th in zip(columns, metric_headers):
        assert th["text"].startswith(c.base) and c.base in th["title"]
        assert c.arrow in th["text"]
        assert {True: "higher is better", False: "lower is better"}.get(
            c.higher_is_better, "no better direction") in th["title"]
    fid = metric_headers[[c.name for c in columns].index("fid.fid")]
    assert "↓" in fid["text"] and fid["data-sort"] == "number" and fid["data-first"] == "asc"
    assert fid["title"] == ("fid.fid — Fréchet distance <to test data> — lower is better"
                            " — n_samples: 1000")
    for model in board.models:
        assert len(page.rows[model]) == 3 + len(columns)
        assert page.rows[model][1]["text"].startswith(model)
    vae = cell(page, board, "vae", "fid.fid")
    assert vae["text"] == "30.0 ± 1.2" and float(vae["data-value"]) == pytest.approx(30.0)
    for part in ("mean 30", "std 0.5", "95% interval [28.7", "3 seeds", "1,000 samples", "rank 2"):
        assert part in vae["title"]
    single = cell(page, board, "ddpm[sampler=ddim, steps=10]", "fid.fid")
    assert single["text"] == "4.5" and "1 seed (no interval)" in single["title"]
    empty = cell(page, board, "ddpm[sampler=ddim, steps=10]", "recon.mse")
    assert empty["text"] == "–" and empty["data-value"] == "" and "empty" in empty["class"]
    # thumbnails where a finished seed has samples.png ('ae' has none, 'gone' diverged)
    thumbs = [a for t, a in page.tags if t == "img" and a.get("alt", "").startswith("samples of")]
    assert sorted(a["alt"] for a in thumbs) == sorted(
        f"samples of {m}" for m in board.models if m not in ("ae", "gone"))
    # the legend and the provenance
    text = render_report(boards, store)
    for line in board.legend(columns):
        assert line.replace("&", "&amp;") in text
    assert "abc123" in text and "f" * 64 in text and "digits-cnn" in text and "torch 2.3" in text


def test_best_cells_and_reference_rows_are_marked(boards, store):
    board = boards[("s", "digits")]
    page = Page(render_report(boards, store))
    for model in board.models:
        for c in board.select(full=True):
            td, stored = cell(page, board, model, c.name), board.cell(model, c.name)
            marked = "best" in td.get("class", "").split()
            assert marked == bool(stored is not None and stored["best"])
    assert "best" in cell(page, board, "ddpm[sampler=ddim, steps=10]", "fid.fid")["class"]
    assert "best" not in cell(page, board, "train-data", "fid.fid").get("class", "")  # unranked
    rows = {a["data-model"]: a for t, a in page.tags if t == "tr" and "data-model" in a}
    assert rows["train-data"]["class"] == "reference" and rows["vae"]["class"] == "entry"
    assert "reference" in page.rows["train-data"][1]["text"]
    assert "diverged" in page.rows["gone"][1]["text"]


def test_user_strings_are_escaped(boards, store):
    text = render_report(boards, store, title="<script>alert(1)</script>")
    assert EVIL not in text and "gan&lt;b&gt;&amp;" in text
    assert "Fréchet distance &lt;to test data&gt;" in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)" in text
    page = Page(text)
    assert page.rows[EVIL][1]["text"].startswith(EVIL)  # the parser reads the label back whole


def test_plots_and_write_report(boards, store, tmp_path):
    plot = tmp_path / "extra" / "digits-losses.png"
    thumbnail(plot, (0, 255, 0))
    text = render_report(boards, store, plots={("s", "digits"): [plot]})
    assert "Training losses" in text and "Quality against sampling speed" not in text
    with pytest.raises(FileNotFoundError):
        render_report(boards, store, plots={("s", "digits"): [tmp_path / "missing.png"]})
    out = write_report(boards, store, tmp_path / "lb" / "s" / "index.html")
    assert out == tmp_path / "lb" / "s" / "index.html"
    assert out.read_text(encoding="utf-8") == render_report(boards, store)  # deterministic
    assert os.listdir(out.parent) == ["index.html"]  # no temporary file left behind


def test_cli_leaderboard_html(store, tmp_path):
    from click.testing import CliRunner

    from genbench.cli.commands import cli

    result = CliRunner().invoke(cli, ["leaderboard", "--out", str(tmp_path), "--format", "html"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!doctype html>") and "gan&lt;b&gt;&amp;" in result.output


# -- in a browser ------------------------------------------------------------------------------

@pytest.fixture
def browser(monkeypatch, tmp_path_factory):
    """Headless Chromium at 1,600 x 1,000 through the system chromedriver, never a download.

    Its profile, caches, crash reports and temporary files go to a folder removed afterwards
    (Chromium writes to ~/.config, ~/.cache and $TMPDIR otherwise)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium or chromedriver is not installed (apt-get install chromium "
                    "chromium-driver)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never fetch a driver
    home = tmp_path_factory.mktemp("chromium")
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "TMPDIR"):  # inherited by the driver
        monkeypatch.setenv(var, str(home))
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000", "--disable-extensions", "--no-first-run",
                f"--user-data-dir={home / 'profile'}", f"--disk-cache-dir={home / 'cache'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(home, ignore_errors=True)


def test_sorting_and_layout_in_chromium(browser, boards, store, tmp_path):
    from selenium.webdriver.common.by import By

    board = boards[("s", "digits")]
    path = write_report(boards, store, tmp_path / "index.html")
    browser.get(path.as_uri())
    table = browser.find_element(By.CSS_SELECTOR, "#board-0-digits table.board")

    def order(group="models"):
        return [tr.get_attribute("data-model")
                for tr in table.find_elements(By.CSS_SELECTOR, f"tbody.{group} tr")]

    models = [m for m in board.models if m != "train-data"]
    assert order() == models and order("references") == ["train-data"]
    position = [c.name for c in board.select(full=True)].index("fid.fid")
    header = table.find_elements(By.CSS_SELECTOR, "thead th")[3 + position]

    def by_fid(reverse):
        known = sorted((m for m in models if not math.isnan(board.value(m, "fid.fid"))),
                       key=lambda m: board.value(m, "fid.fid"), reverse=reverse)
        return known + [m for m in models if m not in known]  # empty cells last either way

    header.click()  # lower is better: best first
    assert order() == by_fid(False) != models
    assert order()[-1] == "gone" and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert order() == by_fid(True) and order()[-1] == "gone"
    assert order("references") == ["train-data"]

    # 1,600 px: no page scroll, no wrapped "mean ± ci", the table fits its wrapper
    layout = """
        const wrap = document.querySelector('#board-0-digits .wrap');
        const wrapped = [...document.querySelectorAll('td[data-value]')].filter(td => {
            const r = document.createRange(); r.selectNodeContents(td);
            return td.textContent.includes('±') && r.getClientRects().length > 1; });
        return [document.documentElement.scrollWidth <= document.documentElement.clientWidth,
                wrap.scrollWidth <= wrap.clientWidth, wrapped.length,
                performance.getEntriesByType('resource').length];"""
    assert browser.execute_script(layout) == [True, True, 0, 0]
    browser.set_window_size(800, 1000)  # too narrow: the wrapper scrolls, cells never wrap
    assert browser.execute_script(layout) == [True, False, 0, 0]
    browser.set_window_size(1600, 1000)
    # the headline toggle hides the other columns
    visible = ("return [...arguments[0].querySelectorAll('thead th')]"
               ".filter(e => e.offsetParent).length")
    before = browser.execute_script(visible, table)
    browser.find_element(By.CSS_SELECTOR, "label[for='board-0-digits-headline']").click()
    assert browser.execute_script(visible, table) == 3 + len(board.headline_columns()) < before

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000 and shot.read_bytes().startswith(PNG)
