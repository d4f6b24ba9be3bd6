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


SECRET = "Tr0ub4dor&3-horse"


def test_the_common_encodings_of_a_value_are_blanked_too() -> None:
    import base64
    from urllib.parse import quote, quote_plus

    raw = SECRET.encode()
    printed = {
        "upper case": SECRET.upper(),
        "lower case": SECRET.lower(),
        "reversed": SECRET[::-1],
        "base64": base64.b64encode(raw).decode(),
        "URL-safe base64": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "upper-case hex": raw.hex().upper(),
        "URL encoding": quote(SECRET, safe=""),
        "form encoding": quote_plus(SECRET + " x"),
    }
    for shift in range(3):  # inside a longer base64 text, at each alignment
        printed[f"base64 after {shift} bytes"] = base64.b64encode(b"k="[:shift] + raw).decode()
    for how, text in printed.items():
        masked = mask_secrets(f"the build printed: {text} (done)", [SECRET])
        assert MASK in masked, how
        assert text not in masked, how
        assert masked.startswith("the build printed: "), how


def test_an_encoding_split_over_lines_is_found() -> None:
    import base64

    encoded = base64.b64encode(SECRET.encode()).decode()
    text = f"token: {encoded[:9]}\n{encoded[9:]}\nok"
    assert mask_secrets(text, [SECRET]) == f"token: {MASK}\nok"


def test_failure_text_without_output_keeps_the_reason() -> None:
    from app.services.masking import with_output, without_output

    reason = with_output("exited with code 3", ["greeter: refusing", f"key {MASK}"])
    assert without_output(reason) == "exited with code 3"
    assert without_output(with_output("was killed for running out of memory", [])) == (
        "was killed for running out of memory"
    )
    assert without_output(None) is None
