"""Search filters beyond text, format and author: the parameter-count range the Hub applies
(`num_parameters`), and the quant and file-size filters applied to each page here
(desktop.core.hub.filters), through huggingface_hub, HubClient and `openlid search`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from desktop.cli.hub import main
from desktop.core.hub.client import HubClient, SearchQuery
from desktop.core.hub.filters import (
    format_hub_count,
    num_parameters_param,
    parse_params,
    parse_size,
)
from tests.hub.server import HubServer


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))


def ids(page: object) -> list[str]:
    return [m.repo_id for m in page.models]  # type: ignore[attr-defined]


def test_words_for_sizes_and_parameter_counts() -> None:
    assert parse_size("500MB") == 500_000_000
    assert parse_size("5GB") == 5_000_000_000
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("4096") == 4096
    assert parse_params("270M") == 270_000_000
    assert parse_params("7b") == 7_000_000_000
    assert parse_params("1.5B") == 1_500_000_000
    for bad in ("5 parsecs", "GB", "-1GB", ""):
        with pytest.raises(ValueError, match="like 500MB"):
            parse_size(bad)
    with pytest.raises(ValueError, match="like 270M"):
        parse_params("7Q")
    assert format_hub_count(8_000_000_000) == "8B"
    assert format_hub_count(4_500_000_000) == "4500M"
    assert num_parameters_param(1_000_000_000, None) == "min:1B"
    assert num_parameters_param(None, None) is None
    with pytest.raises(ValueError, match="smallest size is above"):
        SearchQuery(min_size=9, max_size=8).params()


def test_the_server_answers_num_parameters_and_expand_as_the_hub(hub: HubServer) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    found = list(api.list_models(num_parameters="min:1B,max:7B",
                                 expand=["gguf", "safetensors", "siblings", "usedStorage"]))
    assert {m.id for m in found} == {"openlid-test/big-gguf", "openlid-test/split-gguf",
                                     "other-org/tiny-llama-gguf"}
    split = next(m for m in found if m.id == "openlid-test/split-gguf")
    assert split.gguf is not None
    assert split.gguf["total"] == 7_000_000_000
    assert split.used_storage is not None
    assert split.used_storage > 0
    assert split.siblings
    assert all(s.size is None for s in split.siblings)
    (st,) = api.list_models(filter="safetensors", expand=["safetensors"])
    assert st.safetensors is not None
    assert st.safetensors.total == 256


def test_parameter_range_goes_to_the_hub(hub: HubServer) -> None:
    with HubClient() as client:
        page = client.search(SearchQuery(min_params=1_000_000_000, max_params=8_000_000_000))
    assert ids(page) == ["openlid-test/big-gguf", "openlid-test/split-gguf",
                         "other-org/tiny-llama-gguf", "openlid-gated/tiny-gated"]
    assert page.filtered == ()  # nothing left out here: the Hub did it
    assert [m.params for m in page.models][:2] == [1_100_000_000, 7_000_000_000]
    asked = [r.path for r in hub.requests if r.path.startswith("/api/models?")]
    assert "num_parameters=min%3A1B%2Cmax%3A8B" in asked[-1]
    assert "expand=siblings" not in asked[-1]  # file names only when a page filter needs them


def test_quant_filter_applies_to_each_page(hub: HubServer) -> None:
    hub.state.page_size = 3
    with HubClient() as client:
        query = SearchQuery(fmt="gguf", quant="q4_k_m")
        first = client.search(query)
        assert first.filtered == ("quant",)
        assert first.scanned == 3
        assert ids(first) == ["openlid-test/tiny-gguf", "openlid-test/big-gguf",
                              "openlid-test/split-gguf"]
        assert first.models[0].quants == ("F16", "Q4_K_M", "Q8_0")  # no projector
        assert first.cursor == "3"
        second = client.next_page(first.next_url or "", query)
        assert ids(second) == ["openlid-gated/tiny-gated"]  # other-org's is a Q4_0
        assert (second.scanned, second.filtered) == (2, ("quant",))
        assert ids(client.search(query, cursor=first.cursor)) == ids(second)


def test_size_filter_reads_each_candidates_files(hub: HubServer) -> None:
    with HubClient() as client:
        big = client.search(SearchQuery(fmt="gguf", min_size=500_000))
        assert ids(big) == ["openlid-test/big-gguf"]  # the ~1 MiB GGUF
        assert big.models[0].size is not None
        assert big.models[0].size > 1_000_000
        assert big.filtered == ("size",)
        before = len(hub.requests)
        small = client.search(SearchQuery(fmt="gguf", quant="Q8_0", max_size=100_000))
    assert ids(small) == ["openlid-test/tiny-gguf", "openlid-test/split-gguf"]
    # The split model's size is all of its shards; each size is the Q8_0 model's.
    assert all(m.size is not None and m.size < 100_000 for m in small.models)
    info_calls = [r.path for r in hub.requests[before:] if r.path.startswith("/api/models/")]
    assert len(info_calls) == 2  # only the repos the quant filter kept


def test_cli_search_flags(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--min-params", "1B", "--max-params", "7B", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["repo_id"] for m in data["models"]] == [
        "openlid-test/big-gguf", "openlid-test/split-gguf", "other-org/tiny-llama-gguf"]
    assert data["next_cursor"] is None
    assert data["filtered_on_page"] == []

    assert main(["search", "--quant", "Q4_K_M", "--max-size", "5GB", "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.split()[0] == "openlid-test/tiny-gguf"
    assert "filtered on this page" in err
    assert "more: --cursor 2" in err
    assert main(["search", "--limit", "2", "--cursor", "2", "--json"]) == 0
    page2 = json.loads(capsys.readouterr().out)
    assert main(["search", "--limit", "2", "--page", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == page2["models"]

    with pytest.raises(SystemExit) as exit_:
        main(["search", "--max-size", "5 parsecs"])
    assert exit_.value.code == 2
    assert "cannot read '5 parsecs' as a file size" in capsys.readouterr().err
    assert main(["search", "--min-params", "8B", "--max-params", "1B"]) == 2
    assert "smallest parameter count is above the largest" in capsys.readouterr().err
