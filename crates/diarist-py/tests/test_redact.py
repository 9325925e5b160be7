"""Personal data in text, found and hidden by the bundled tagger."""

from __future__ import annotations

import diarist


def test_a_name_and_a_phone_number_are_hidden():
    text = "hi this is ana ruiz you can call me on five five five one two one two"
    redacted, entities = diarist.redact(text)
    assert redacted == "hi this is [PERSON_NAME] you can call me on [PHONE]"
    assert [(e.label, e.text) for e in entities] == [
        ("PERSON_NAME", "ana ruiz"),
        ("PHONE", "five five five one two one two"),
    ]
    for e in entities:
        assert text[e.start : e.end] == e.text and 0.7 <= e.score <= 1


def test_offsets_are_python_string_indices_in_non_ascii_text():
    text = "señora núñez vive en málaga y su correo es ana at example dot com"
    redacted, entities = diarist.redact(text)
    for e in entities:
        assert text[e.start : e.end] == e.text
    assert "[EMAIL]" in redacted


def test_text_without_personal_data_is_left_alone():
    assert diarist.redact("the meeting went well") == ("the meeting went well", [])
    assert diarist.redact("") == ("", [])


def test_the_policy_comes_from_the_configuration(tmp_path):
    config = tmp_path / "mask.toml"
    config.write_text('[pii]\nstyle = "mask"\nmask = "***"\nredact = ["PHONE"]\n')
    redacted, entities = diarist.redact(
        "this is ana ruiz call me on five five five one two one two", config
    )
    assert redacted == "this is ana ruiz call me on ***"
    assert {e.label for e in entities} == {"PERSON_NAME", "PHONE"}
