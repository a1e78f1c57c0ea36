"""The Hub client against the local Hub: huggingface_hub's own parsers read the server's answers
unchanged, and `HubClient` turns them into search pages, file lists, model units and messages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi, RepoFile, hf_hub_download

from desktop.core.hub.client import HubClient, HubError, SearchQuery, card_body
from desktop.core.hub.http import KIND_GATED, KIND_NOT_FOUND, KIND_OFFLINE
from desktop.core.hub.quant import KIND_GGUF, KIND_PROJECTOR, KIND_SAFETENSORS
from tests.hub.conftest import DENIED, GRANTED, repo_by_id
from tests.hub.repos import FakeRepo, RepoFileData
from tests.hub.server import HubServer

# --- the server speaks the Hub's API: huggingface_hub parses it unchanged ----------------------


def test_hfapi_lists_and_pages_models(hub: HubServer) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    ids = [m.id for m in api.list_models(search="tiny", sort="downloads", limit=10)]
    assert ids[0] == "openlid-test/tiny-gguf"  # most downloads first
    assert "openlid-private/secret" not in ids
    gguf = {m.id for m in api.list_models(filter="gguf", author="openlid-test")}
    assert gguf == {"openlid-test/tiny-gguf", "openlid-test/big-gguf", "openlid-test/split-gguf"}
    hub.state.page_size = 2  # huggingface_hub follows the Link header through every page
    every = list(api.list_models(author="openlid-test", sort="likes"))
    assert len(every) == 4
    assert [m.likes for m in every] == sorted((m.likes or 0 for m in every), reverse=True)
    assert sum(r.path.startswith("/api/models?") for r in hub.requests) >= 4


def test_hfapi_model_info_paths_info_and_tree(hub: HubServer, fake_repos: list[FakeRepo]) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    repo = repo_by_id(fake_repos, "openlid-test/tiny-gguf")
    info = api.model_info(repo.repo_id, files_metadata=True)
    assert info.sha == repo.sha
    assert info.gated is False
    assert info.card_data is not None
    siblings = {s.rfilename: s for s in info.siblings or ()}
    gguf = siblings["tiny-Q8_0.gguf"]
    assert gguf.lfs is not None
    assert gguf.lfs.sha256 == repo.files["tiny-Q8_0.gguf"].sha256
    assert gguf.size == len(repo.files["tiny-Q8_0.gguf"].data)
    assert siblings["README.md"].lfs is None
    assert api.model_info(repo.repo_id, revision=repo.sha).sha == repo.sha
    (entry,) = api.get_paths_info(repo.repo_id, ["tiny-F16.gguf", "missing.bin"])
    assert isinstance(entry, RepoFile)
    assert entry.lfs is not None
    assert entry.lfs.sha256 == repo.files["tiny-F16.gguf"].sha256
    tree = {f.path for f in api.list_repo_tree(repo.repo_id)}
    assert tree == set(repo.files)


def test_hf_hub_download_follows_the_cdn_redirect(hub: HubServer, tmp_path: Path,
                                                  fake_repos: list[FakeRepo]) -> None:
    repo = repo_by_id(fake_repos, "openlid-test/tiny-gguf")
    path = hf_hub_download(repo.repo_id, "tiny-Q4_K_M.gguf", local_dir=tmp_path,
                           endpoint=hub.url, token=False)
    assert Path(path).read_bytes() == repo.files["tiny-Q4_K_M.gguf"].data
    assert any(r.server == "cdn" for r in hub.requests)


# --- HubClient: search ------------------------------------------------------------------------


def test_search_filters_sorts_and_pages(hub: HubServer) -> None:
    with HubClient() as client:  # endpoint from HF_ENDPOINT
        assert client.endpoint == hub.url
        page = client.search(SearchQuery("tiny", limit=2))
        assert [m.repo_id for m in page.models] == [
            "openlid-test/tiny-gguf", "openlid-test/tiny-safetensors"]
        assert page.next_url is not None
        rest = client.next_page(page.next_url)
        assert "other-org/tiny-llama-gguf" in [m.repo_id for m in rest.models]
        assert rest.next_url is None

        st = client.search(SearchQuery(fmt="safetensors"))
        assert [m.repo_id for m in st.models] == ["openlid-test/tiny-safetensors"]
        by_author = client.search(SearchQuery(author="other-org"))
        assert [m.repo_id for m in by_author.models] == ["other-org/tiny-llama-gguf"]

        for sort, key in (("downloads", "downloads"), ("likes", "likes"),
                          ("trending", "trending"), ("updated", "updated")):
            models = client.search(SearchQuery(fmt="gguf", sort=sort)).models
            values = [getattr(m, key) for m in models]
            assert values == sorted(values, reverse=True), sort


def test_search_result_fields(hub: HubServer) -> None:
    with HubClient() as client:
        (gated,) = client.search(SearchQuery(author="openlid-gated")).models
    assert gated.gated == "manual"
    assert gated.license == "llama3"
    assert gated.updated is not None
    assert gated.updated.startswith("2025-01-01")
    assert gated.author == "openlid-gated"
    assert gated.downloads == 50
    assert gated.to_json()["repo_id"] == "openlid-gated/tiny-gated"


def test_search_sees_private_repos_only_with_a_token(hub: HubServer) -> None:
    with HubClient(token=False) as anonymous, HubClient(token=GRANTED) as owner:
        assert not anonymous.search(SearchQuery("secret")).models
        assert [m.repo_id for m in owner.search(SearchQuery("secret")).models] == [
            "openlid-private/secret"]


def test_bad_query_is_refused_before_the_network() -> None:
    with pytest.raises(ValueError, match="sort"):
        SearchQuery(sort="stars").params()
    with pytest.raises(ValueError, match="format"):
        SearchQuery(fmt="onnx").params()


# --- HubClient: a repo's files ---------------------------------------------------------------


def test_repo_files_and_units(hub: HubServer, fake_repos: list[FakeRepo]) -> None:
    repo = repo_by_id(fake_repos, "openlid-test/tiny-gguf")
    with HubClient() as client:
        details = client.repo(repo.repo_id)
    assert details.commit == repo.sha
    files = {f.path: f for f in details.files}
    assert files["tiny-Q4_K_M.gguf"].quant == "Q4_K_M"
    assert files["tiny-Q4_K_M.gguf"].sha256 == repo.files["tiny-Q4_K_M.gguf"].sha256
    assert files["README.md"].sha256 is None
    assert files["README.md"].quant is None
    assert files["README.md"].blob_id == repo.files["README.md"].blob_sha1
    units = {u.name: u for u in details.units}
    assert {u.quant for u in units.values() if u.kind == KIND_GGUF} == {"Q4_K_M", "Q8_0", "F16"}
    assert units["mmproj-tiny-F16.gguf"].kind == KIND_PROJECTOR
    assert units["tiny-F16.gguf"].size == len(repo.files["tiny-F16.gguf"].data)
    assert details.to_json()["units"][0]["size"] is not None


def test_split_gguf_is_one_unit(hub: HubServer) -> None:
    with HubClient() as client:
        details = client.repo("openlid-test/split-gguf")
    split = next(u for u in details.units if u.quant == "Q8_0")
    assert [f.path for f in split.files] == [
        f"tiny-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split.complete
    assert split.size == sum(f.size or 0 for f in split.files)


def test_safetensors_repo_is_one_unit(hub: HubServer) -> None:
    with HubClient() as client:
        details = client.repo("openlid-test/tiny-safetensors")
    (unit,) = details.units
    assert unit.kind == KIND_SAFETENSORS
    assert unit.complete
    names = {f.path for f in unit.files}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json",
            "model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"} <= names
    assert "README.md" not in names


def test_model_card(hub: HubServer) -> None:
    with HubClient() as client:
        text = client.model_card("openlid-test/tiny-gguf")
    assert text.startswith("---\nlicense: mit")
    assert card_body(text).lstrip().startswith("# openlid-test/tiny-gguf")


def test_repo_without_card_gives_empty_text(tmp_path: Path) -> None:
    bare = FakeRepo("someone/bare", {"m.gguf": RepoFileData("m.gguf", b"GGUF", True)}, ["gguf"])
    with HubServer([bare]) as server, HubClient(server.url, token=False) as client:
        assert client.model_card("someone/bare") == ""


# --- HubClient: refusals and failures in plain words ------------------------------------------


def test_gated_repo_explains_itself(hub: HubServer) -> None:
    repo_id = "openlid-gated/tiny-gated"
    with HubClient(token=False) as client:
        assert client.repo(repo_id).summary.gated == "manual"  # metadata stays public
        with pytest.raises(HubError) as anonymous:
            client.model_card(repo_id)
    assert anonymous.value.kind == KIND_GATED
    assert anonymous.value.status == 401
    assert "Log in with a Hugging Face token" in anonymous.value.message
    assert f"{hub.url}/{repo_id}" in anonymous.value.message
    with HubClient(token=DENIED) as client, pytest.raises(HubError) as denied:
        client.model_card(repo_id)
    assert denied.value.status == 403
    assert "not been granted access" in str(denied.value)
    with HubClient(token=GRANTED) as client:
        assert "license: llama3" in client.model_card(repo_id)


def test_private_and_missing_repos(hub: HubServer) -> None:
    with HubClient(token=False) as client, pytest.raises(HubError) as private:
        client.repo("openlid-private/secret")
    assert private.value.kind == KIND_NOT_FOUND
    assert "private and you are not logged in" in private.value.message
    with HubClient(token=DENIED) as client, pytest.raises(HubError) as missing:
        client.repo("nobody/nothing")
    assert missing.value.status == 404
    assert "was not found" in missing.value.message
    with HubClient(token=GRANTED) as client:
        assert client.repo("openlid-private/secret").summary.private


def test_token_from_the_environment_is_sent(hub: HubServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", GRANTED)
    with HubClient() as client:
        assert client.repo("openlid-private/secret").summary.repo_id == "openlid-private/secret"
    assert hub.requests[-1].headers["authorization"] == f"Bearer {GRANTED}"


def test_offline_is_a_clear_message_at_once(hub: HubServer) -> None:
    with HubClient(timeout=5) as client:
        client.search(SearchQuery("tiny"))  # a kept-alive connection to a live server
        hub.stop()
        start = time.monotonic()
        for call in (lambda: client.search(SearchQuery("tiny")),
                     lambda: client.repo("openlid-test/tiny-gguf"),
                     lambda: client.model_card("openlid-test/tiny-gguf")):
            with pytest.raises(HubError) as err:
                call()
            assert err.value.kind == KIND_OFFLINE
            assert err.value.message.startswith("Cannot reach the Hugging Face Hub at 127.0.0.1")
    assert time.monotonic() - start < 3


def test_hf_hub_offline_mode_is_explained(hub: HubServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with HubClient() as client, pytest.raises(HubError) as err:
        client.repo("openlid-test/tiny-gguf")
    assert err.value.kind == KIND_OFFLINE
    assert "HF_HUB_OFFLINE" in err.value.message


def test_offline_mode_covers_search_cards_and_downloads(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with HubClient() as client:
        for call in (lambda: client.search(SearchQuery()),
                     lambda: client.model_card("openlid-test/tiny-gguf")):
            with pytest.raises(HubError, match="offline mode is on"):
                call()
    assert not hub.requests
