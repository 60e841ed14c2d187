"""Retrieval as a person uses it: `zoo train` a recipe (shortened), `zoo embed` its test split, `zoo index`,
`zoo search` — for images (digits-clip), molecules (molecule-text) and audio (clap-tones)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

import zoo
from zoo.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
pytestmark = pytest.mark.slow


def train_embed_index(tmp: Path, recipe: str, dataset: str, epochs: int, extra: tuple[str, ...] = ()) -> Path:
    run = zoo.train(RECIPES / recipe, overrides=[f"run.epochs={epochs}", "run.progress=false", "eval.tasks=[]",
                                                 *extra], run_dir=tmp / "run").run_dir
    out = tmp / "emb"
    assert main(["embed", str(run), "--dataset", dataset, "--split", "test", "--out", str(out), "--no-progress"]) == 0
    assert main(["index", str(out)]) == 0
    return out


def search_json(capsys, out: Path, *args: str) -> list | dict:
    capsys.readouterr()
    assert main(["search", str(out), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def digits_index(tmp_path_factory):
    # the full recipe (10 epochs) gives precision@10 = 1.0 for every digit; 2 epochs already 1.0 for sevens
    return train_embed_index(tmp_path_factory.mktemp("digits"), "digits-clip.toml", "digits", epochs=2)


def test_digits_a_caption_finds_the_sevens(digits_index, capsys, tmp_path):
    res = search_json(capsys, digits_index, "--modality", "text", "--query", "a photo of the number seven")
    assert [h["field"] for h in res["hits"]] == ["image"] * 10 and res["query"] == {"text": "a photo of the number seven"}
    assert sum(h["labels"]["class"] == 7 for h in res["hits"]) / 10 >= 0.9
    assert {"rank", "score", "id", "labels", "pointer"} <= set(res["hits"][0])
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (tmp_path / "q.txt").write_text("".join(f"a photo of the number {w}\n" for w in words))
    many = search_json(capsys, digits_index, "--modality", "text", "--queries", str(tmp_path / "q.txt"))
    precision = [sum(h["labels"]["class"] == d for h in r["hits"]) / 10 for d, r in enumerate(many)]
    print("digits: precision@10 per digit", precision)
    assert len(many) == 10 and sum(precision) / 10 >= 0.8, precision  # full recipe: 1.0 for every digit
    capsys.readouterr()
    assert main(["search", str(digits_index), "--modality", "text", "--query", "handwritten 3", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "query: text='handwritten 3'" in printed and "class_name=" in printed and len(printed.splitlines()) == 5


def test_molecules_a_smiles_finds_its_caption(tmp_path, capsys):
    # the molecule's own caption is in the top 10 for 93 % of test SMILES after the full recipe (5 epochs),
    # for 55 % after these 2 epochs; chance is 1 %
    out = train_embed_index(tmp_path, "molecule-text.toml", "molecule-captions", epochs=2)
    ds = zoo.create_dataset("molecule-captions", split="test")
    rows = range(0, len(ds), len(ds) // 40)[:40]
    (tmp_path / "q.txt").write_text("".join(ds[i]["molecule"] + "\n" for i in rows))
    res = search_json(capsys, out, "--modality", "molecule", "--queries", str(tmp_path / "q.txt"))
    found = [any(ds[h["row"]]["caption"] == ds[i]["caption"] for h in r["hits"]) for i, r in zip(rows, res)]
    assert all(h["field"] == "caption" for r in res for h in r["hits"])
    print("molecule-text: own caption in the top 10 for", sum(found) / len(found), "of the SMILES queries")
    assert sum(found) / len(found) >= 0.45, sum(found) / len(found)
    hit = api_hits(out, "molecule", ds[0]["molecule"])[0]  # the page shows captions as text …
    assert hit["field"] == "caption" and hit["media"]["text"] == ds[hit["row"]]["caption"]
    hit = api_hits(out, "text", ds[0]["caption"])[0]  # … and molecules as rdkit drawings
    assert hit["media"]["mime"] == "image/svg+xml" and b"<svg" in api_get(out, hit["media"]["url"]).content


def test_audio_a_caption_finds_its_tones(tmp_path, capsys):
    # full recipe (10 epochs): precision@10 = 1.0 for each of the 9 tone classes
    out = train_embed_index(tmp_path, "clap-tones.toml", "tones-captions", epochs=4)
    ds = zoo.create_dataset("tones-captions", split="test")
    (tmp_path / "q.txt").write_text("".join(name + "\n" for name in ds.class_names))
    res = search_json(capsys, out, "--modality", "text", "--queries", str(tmp_path / "q.txt"))
    precision = [sum(h["labels"]["class"] == k for h in r["hits"]) / 10 for k, r in enumerate(res)]
    assert all(h["field"] == "audio" for r in res for h in r["hits"])
    print("clap-tones: precision@10 per class", precision)
    assert sum(precision) / len(precision) >= 0.9, precision  # 1.0 after these 4 epochs; chance: 1/9
    hit = api_hits(out, "text", ds.class_names[0])[0]  # the page plays audio hits
    wav = api_get(out, hit["media"]["url"])
    assert hit["media"]["mime"] == "audio/wav" and wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"


def api_get(out: Path, url: str):
    from fastapi.testclient import TestClient

    from zoo.retrieval.serve import create_app
    return TestClient(create_app([out])).get(url)


def api_hits(out: Path, modality: str, q: str) -> list[dict]:
    res = api_get(out, f"/api/search?modality={modality}&k=3&q={quote(q)}")
    assert res.status_code == 200, res.text
    return res.json()["hits"]


# -- zoo serve: the JSON API (FastAPI TestClient) and the page in a real headless Chromium -----------------
@pytest.fixture(scope="module")
def client(digits_index):
    from fastapi.testclient import TestClient

    from zoo.retrieval.serve import create_app
    return TestClient(create_app([digits_index], [digits_index.parent / "run"], max_upload=4096))


def test_api_searches_by_text_and_by_upload_and_renders_hits(client):
    ix = client.get("/api/indexes").json()
    assert len(ix) == 1 and ix[0]["fields"] == {"image": "image", "caption": "text"}
    assert ix[0]["query_modalities"] == ["image", "text"] and ix[0]["indexed"]["image"]["recall@10"] == 1.0
    res = client.get("/api/search", params={"modality": "text", "q": "a photo of the number seven", "k": 10}).json()
    assert res["field"] == "image" and sum(h["labels"]["class"] == 7 for h in res["hits"]) >= 9
    png = client.get(res["hits"][0]["media"]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    # drop an image file: its own row comes first among the images; captions come back as inline text
    row = res["hits"][0]["row"]
    up = client.post("/api/search", data={"modality": "image", "field": "image", "k": "3"},
                     files={"file": ("seven.png", png.content, "image/png")}).json()
    assert up["hits"][0]["row"] == row and up["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    up = client.post("/api/search", data={"modality": "image", "k": "3"}, files={"file": ("q.png", png.content)}).json()
    assert up["field"] == "caption" and isinstance(up["hits"][0]["media"]["text"], str)
    models = client.get("/api/models").json()
    assert [m["name"] for m in models] == ["run"] and "zoo contrastive model" in models[0]["card"] and models[0]["plots"]
    pic = client.get(f"/api/models/0/plots/{models[0]['plots'][0]}")
    assert pic.status_code == 200 and pic.content[:4] == b"\x89PNG"
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200


def test_api_answers_bad_requests_with_a_4xx_and_never_follows_a_path(client):
    bad = client.get("/api/search", params={"modality": "audio", "q": "beep"})
    assert bad.status_code == 400 and "query with one of those" in bad.json()["detail"]
    assert client.get("/api/search", params={"modality": "text"}).status_code == 422          # no q
    assert client.get("/api/search", params={"q": "7"}).status_code == 422                    # no modality
    assert client.get("/api/search", params={"modality": "text", "q": "7", "k": 0}).status_code == 422
    assert client.get("/api/search", params={"modality": "text", "q": "7", "index": 3}).status_code == 404
    assert client.get("/api/search", params={"modality": "text", "q": "7", "field": "nope"}).status_code == 400
    assert client.get("/api/item/0/image/100000").status_code == 404
    assert client.get("/api/item/0/nope/1").status_code == 404
    for path in ["/api/models/0/plots/..%2Fconfig.json", "/api/models/0/plots/..%2F..%2Femb%2Fmanifest.json",
                 "/api/models/0/plots/%2Fetc%2Fpasswd", "/api/models/0/plots/../../config.json",
                 "/api/models/9/plots/training.png", "/static/..%2F..%2F..%2Fconfig.json",
                 "/static/../__init__.py", "/api/item/0/..%2F..%2Fconfig.json/1"]:
        r = client.get(path)
        assert r.status_code == 404 and b"safetensors" not in r.content and b"towers" not in r.content, path
    big = client.post("/api/search", data={"modality": "image"}, files={"file": ("x.png", b"\0" * 5000)})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    assert client.post("/api/search", data={"modality": "image"}, files={"file": ("x.png", b"")}).status_code == 400
    junk = client.post("/api/search", data={"modality": "image"}, files={"file": ("x.png", b"not an image")})
    assert junk.status_code == 400 and "image" in junk.json()["detail"]


def _chromium() -> tuple[str, str | None]:
    return shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")


@pytest.mark.skipif(not (Path(_chromium()[0]).exists() and _chromium()[1]),
                    reason="headless Chromium is not installed (apt-get install -y chromium chromium-driver, as "
                           ".ci/run does); the page is untested here, the API tests above still ran")
def test_page_in_headless_chromium(digits_index, tmp_path):
    import socket
    import threading
    import time
    browser, driver = _chromium()
    uvicorn = pytest.importorskip("uvicorn")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from zoo.retrieval.serve import create_app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app([digits_index]), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    page = webdriver.Chrome(service=webdriver.ChromeService(driver), options=opts)
    try:
        page.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(page, 30)
        wait.until(lambda p: p.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        page.find_element(By.ID, "q").send_keys("a photo of the number seven\n")
        wait.until(lambda p: len(p.find_elements(By.CSS_SELECTOR, ".hit img")) == 10)
        wait.until(lambda p: all(i.get_property("naturalWidth") > 0 for i in p.find_elements(By.CSS_SELECTOR, ".hit img")))
        chips = [c.text for c in page.find_elements(By.CSS_SELECTOR, ".hit .chip")]
        assert sum("seven" in c for c in chips) >= 9, chips
        page.save_screenshot(str(tmp_path / "search.png"))
        if os.environ.get("ZOO_UPDATE_SCREENSHOT"):  # regenerates docs/images/search.png
            shutil.copy(tmp_path / "search.png", Path(__file__).resolve().parents[2] / "docs/images/search.png")
        page.find_element(By.ID, "q").clear()
        page.find_element(By.ID, "modality").send_keys("audio")  # not in the list: stays a valid choice
        page.find_element(By.ID, "q").send_keys("\n")
        wait.until(lambda p: "Type a query" in p.find_element(By.ID, "status").text)
    finally:
        page.quit()
        server.should_exit = True
