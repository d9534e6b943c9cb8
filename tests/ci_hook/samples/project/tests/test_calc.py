from pkg.calc import mean, parse_port


def test_mean():
    assert mean([1.0, 2.0, 3.0]) == 2.0


def test_parse_port():
    assert parse_port(" 80 ") == 80


def test_ok():
    assert mean([2.0, 2.0, 2.0, 2.0, 2.0]) > 0
