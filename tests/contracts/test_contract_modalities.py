"""Every registered modality that reads files (``extensions``), parametrised over the registry: a missing
file, and a file of that suffix holding bytes of no format (and no valid UTF-8), are a ``DataError`` that
names the file — never a decoder's own exception or a half-read raw."""
from __future__ import annotations

import pytest

import zoo
from zoo.errors import DataError

FILE_MODALITIES = [m for m in zoo.list_modalities() if zoo.registry().modality(m).extensions]


def test_the_file_reading_modalities_are_found():
    assert {"image", "audio", "video", "molecule", "text"} <= set(FILE_MODALITIES)


@pytest.mark.parametrize("content", [None, b"\xff\x00\xfe" * 64], ids=["missing", "garbage"])
@pytest.mark.parametrize("modality", FILE_MODALITIES)
def test_an_unreadable_file_is_a_data_error_naming_it(tmp_path, modality, content):
    spec = zoo.registry().modality(modality)
    path = tmp_path / f"broken{spec.extensions[0]}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=f"broken\\{spec.extensions[0]}"):
        spec.load(path)  # a pathlib.Path, as the folder and csv datasets hand it (a str is text's own raw)
