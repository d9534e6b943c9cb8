"""`redline serve` and `redline proxy`: the model endpoint editors call, recording every generation."""
