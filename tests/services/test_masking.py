"""Secret values blanked out of free text: every occurrence, whole or split by line breaks."""

from __future__ import annotations

from app.services.masking import MASK, mask_secrets


def test_every_occurrence_is_blanked_and_the_rest_kept() -> None:
    text = "token=s3cret-value; again s3cret-value."
    assert mask_secrets(text, ["s3cret-value"]) == f"token={MASK}; again {MASK}."


def test_a_value_split_over_lines_is_found() -> None:
    text = "start\nkey: s3cret-\nvalue end\nnext"
    assert mask_secrets(text, ["s3cret-value"]) == f"start\nkey: {MASK} end\nnext"
    assert mask_secrets("a s3c\r\nret-value b", ["s3cret-value"]) == f"a {MASK} b"


def test_a_value_with_line_breaks_of_its_own_is_found_however_the_text_breaks_it() -> None:
    certificate = "-----BEGIN KEY-----\r\nMIIBsecret\r\n-----END KEY-----"
    text = "loaded -----BEGIN KEY-----\nMIIBsecret\n-----END KEY----- ok"
    assert mask_secrets(text, [certificate]) == f"loaded {MASK} ok"


def test_overlapping_values_and_short_values() -> None:
    assert mask_secrets("abcdefgh", ["abcdef", "defgh"]) == MASK
    # Too short to blank without garbling the text.
    assert mask_secrets("pin 123 at 123", ["123"]) == "pin 123 at 123"
    assert mask_secrets("", ["s3cret"]) == ""
    assert mask_secrets("nothing here", []) == "nothing here"


def test_a_large_value_is_searched_for_without_a_pattern_of_its_size() -> None:
    secret = "k" * (1 << 20)
    text = "line\n" * 1000 + secret[:500_000] + "\n" + secret[500_000:] + "\nend"
    assert mask_secrets(text, [secret]) == "line\n" * 1000 + MASK + "\nend"
