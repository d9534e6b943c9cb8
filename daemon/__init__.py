"""`redline daemon`: nightly training that runs itself, for every repository set up with `redline init`.

Torch-free: training happens in a child process (`child.py`), so a crash, an OOM kill or a time-out never takes
the daemon down. See docs/daemon.md."""
