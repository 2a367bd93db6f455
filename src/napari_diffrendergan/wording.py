"""Words for counts in messages: "1 particle", "2 particles", never "1 particles"."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` in the number it takes (``plural`` when not noun + "s")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
