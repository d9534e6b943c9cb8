"""Secret scrubbing (placeholder identity until implemented)."""


def scrub(text: str) -> str:
    return text
