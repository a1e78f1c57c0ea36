"""Vision pairing (core.vision): projectors told apart by name and by metadata, the projector
chosen for a model in a folder and in a Hub repo, images checked, and the library marking a
model with a projector beside it as vision-capable."""

from __future__ import annotations

from pathlib import Path

from desktop.core.library import catalog
from desktop.core.vision import (
    MAX_IMAGE_BYTES,
    check_image,
    is_projector_file,
    looks_like_projector,
    pick_projector,
    projector_beside,
    repo_projector,
)
from tests.ggufmaker import write_tiny_gguf
from tests.visionmaker import png_bytes, write_tiny_mmproj


def test_projectors_are_told_apart_by_name() -> None:
    assert looks_like_projector("mmproj-gemma-3-4b-it-f16.gguf")
    assert looks_like_projector("sub/Qwen2.5-VL-7B.mmproj-Q8_0.gguf")
    assert not looks_like_projector("gemma-3-4b-it-Q4_K_M.gguf")
    assert not looks_like_projector("mmproj-notes.txt")


def test_projectors_are_told_apart_by_metadata(tmp_path: Path) -> None:
    projector = write_tiny_mmproj(tmp_path / "encoder.gguf")  # a name that says nothing
    model = write_tiny_gguf(tmp_path / "model.gguf")
    assert is_projector_file(projector)
    assert not is_projector_file(model)


def test_the_projector_sharing_the_model_name_and_f16_is_picked() -> None:
    found = [
        "mmproj-llava-7b-Q8_0.gguf",
        "mmproj-gemma-3-4b-f32.gguf",
        "mmproj-gemma-3-4b-F16.gguf",
        "mmproj-gemma-3-4b-Q8_0.gguf",
    ]
    assert pick_projector("gemma-3-4b-it-Q4_K_M.gguf", found) == "mmproj-gemma-3-4b-F16.gguf"
    assert pick_projector("llava-7b.Q4_0.gguf", found) == "mmproj-llava-7b-Q8_0.gguf"
    assert pick_projector("anything.gguf", []) is None


def test_a_hub_repo_pairs_the_projector_in_the_models_folder() -> None:
    files = [
        "README.md",
        "mmproj-F16.gguf",
        "Q4_K_M/model-Q4_K_M.gguf",
        "Q4_K_M/mmproj-model-f16.gguf",
        "model-Q8_0.gguf",
    ]
    assert repo_projector("Q4_K_M/model-Q4_K_M.gguf", files) == "Q4_K_M/mmproj-model-f16.gguf"
    assert repo_projector("model-Q8_0.gguf", files) == "mmproj-F16.gguf"
    assert repo_projector("model-Q8_0.gguf", ["model-Q8_0.gguf", "README.md"]) is None


def test_the_projector_beside_a_model_file(tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "tiny-vision-Q4_K_M.gguf")
    assert projector_beside(model) is None
    projector = write_tiny_mmproj(tmp_path / "mmproj-tiny-vision-f16.gguf")
    assert projector_beside(model) == projector
    assert projector_beside(projector) is None  # a projector has no projector


def test_the_library_marks_a_model_with_a_projector_as_vision(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "seeing").mkdir(parents=True)
    (models / "blind").mkdir()
    write_tiny_gguf(models / "seeing" / "tiny-see.gguf")
    write_tiny_mmproj(models / "seeing" / "mmproj-tiny-see-f16.gguf")
    write_tiny_gguf(models / "blind" / "tiny-blind.gguf")
    found = {Path(m.path).name: m for m in catalog.scan(models)}
    assert set(found) == {"tiny-see.gguf", "tiny-blind.gguf"}  # the projector is no model
    assert found["tiny-see.gguf"].vision
    assert not found["tiny-blind.gguf"].vision


def test_images_are_checked_in_words() -> None:
    assert check_image("cat.PNG", png_bytes()) == ""
    assert check_image("cat.webp", b"RIFF....WEBP") == ""
    assert "not a PNG, JPEG or WebP" in check_image("notes.pdf", b"%PDF")
    assert "empty" in check_image("cat.jpg", b"")
    assert "larger than" in check_image("cat.jpg", b"\0" * (MAX_IMAGE_BYTES + 1))


def test_images_are_stored_with_the_conversation(tmp_path: Path) -> None:
    from desktop.core.conversations.images import ImageStore, StoredImage
    from desktop.core.conversations.store import ConversationStore

    db = tmp_path / "openlid.sqlite3"
    with ConversationStore(db) as store:
        conv = store.create("seeing")
        first = store.append(conv.id, "user", "what is this?")
        second = store.append(conv.id, "user", "and this?")
    red, blue = png_bytes(color=(200, 0, 0)), png_bytes(color=(0, 0, 200))
    with ImageStore(db) as images:
        images.save(first.id, [StoredImage("red.png", red), StoredImage("blue.png", blue)])
        images.copy(first.id, second.id)
    with ImageStore(db) as images:  # reopened: the table is there, nothing lost
        assert [i.name for i in images.load(first.id)] == ["red.png", "blue.png"]
        assert images.load(first.id)[1].data == blue
        assert set(images.load_many([first.id, second.id, 999])) == {first.id, second.id}
        images.save(first.id, [StoredImage("blue.png", blue)])
        assert [i.name for i in images.load(first.id)] == ["blue.png"]
        with ConversationStore(db) as store:
            store.delete(conv.id)
        assert images.prune() == 0  # the three went with their messages (images' trigger)
        assert images.load(first.id) == []
