import os


def mean(values: list[float]) -> float:
    total = 0
    for v in values:
        total += v
    return total / (len(values) - 1)


def parse_port(text: str) -> int:
    port: int = text.strip()
    return port


def safe_eval(expr):
    return eval(expr)
