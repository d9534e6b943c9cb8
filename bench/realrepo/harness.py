"""The unit-test run of one attempt, in a child process (`python -I -S harness.py < job.json`): standard library only.

The job names a working directory, the repository's `app/util.py`, the module with the reference function and the
module with the attempt. Each test case runs both functions in fresh case directories (its files, directories and
settings), then compares the attempt's return value and the files and directories it left with the reference's,
pytest style. Prints one JSON object: `{"passed": true}` or `{"passed": false, "failure": {...}}` for the first
failing case (message, detail, file row of the attempt's innermost frame).
"""

import copy
import json
import math
import os
import sys
import traceback
from datetime import UTC, datetime


def write_package(root, util, module, source):
    pkg = os.path.join(root, "app")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w", encoding="utf-8") as fh:
        fh.write("")
    with open(os.path.join(pkg, "util.py"), "w", encoding="utf-8") as fh:
        fh.write(util)
    path = os.path.join(pkg, module + ".py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(source)
    return path


def import_function(root, module, name):
    for key in [k for k in sys.modules if k == "app" or k.startswith("app.")]:
        del sys.modules[key]
    sys.path.insert(0, root)
    try:
        mod = __import__("app." + module, fromlist=[name])
    finally:
        sys.path.remove(root)
    return getattr(mod, name)


def prepare(case_dir, case, env0):
    os.makedirs(case_dir)
    for rel in case.get("dirs", []):
        os.makedirs(os.path.join(case_dir, rel), exist_ok=True)
    for rel, content in case.get("files", {}).items():
        path = os.path.join(case_dir, rel)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content if isinstance(content, str) else json.dumps(content))
    os.environ.clear()
    os.environ.update(env0)
    os.environ.update(case.get("env", {}))


def snapshot(case_dir):
    files, dirs = {}, set()
    for here, subdirs, names in os.walk(case_dir):
        rel_here = os.path.relpath(here, case_dir)
        for d in subdirs:
            dirs.add(os.path.normpath(os.path.join(rel_here, d)))
        for n in names:
            rel = os.path.normpath(os.path.join(rel_here, n))
            with open(os.path.join(here, n), encoding="utf-8", errors="replace") as fh:
                files[rel] = fh.read()
    return files, dirs


def call(func, case, case_dir, env0):
    prepare(case_dir, case, env0)
    os.chdir(case_dir)
    try:
        return ("ok", func(*copy.deepcopy(case.get("args", []))))
    except BaseException as exc:  # the attempt's failure is the test's result
        return ("raised", exc)
    finally:
        os.chdir(os.path.dirname(case_dir))


def short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def as_time(value):
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str) and len(value) >= 16 and value[4:5] == "-":
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def same(got, want, mode):
    if mode == "float" and isinstance(got, (int, float)) and isinstance(want, (int, float)) \
            and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if mode == "time":
        tg, tw = as_time(got), as_time(want)
        if tw is not None:
            return tg is not None and abs((tg - tw).total_seconds()) < 300
        if isinstance(want, dict) and isinstance(got, dict):
            return got.keys() == want.keys() and all(same(got[k], want[k], mode) for k in want)
        if isinstance(want, (list, tuple)) and type(got) is type(want):
            return len(got) == len(want) and all(same(a, b, mode) for a, b in zip(got, want, strict=True))
    return type(got) is type(want) and got == want if isinstance(want, bool) else got == want


def innermost_row(exc, path):
    row = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            row = frame.lineno
    return row


def source_line(path, row):
    if row is None:
        return None
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    return lines[row - 1].strip() if 0 < row <= len(lines) else None


def raised(exc, path, where):
    row = innermost_row(exc, path)
    line = source_line(path, row)
    name = type(exc).__name__
    message = f"{name}: {exc}" if str(exc) else name
    detail = f">   {line}\n{where}:{row}: {name}" if line is not None else None
    return {"message": message, "detail": detail, "row": row}


def compare_files(ref_snap, att_snap, mode):
    ref_files, ref_dirs = ref_snap
    att_files, att_dirs = att_snap
    for d in sorted(ref_dirs - att_dirs):
        return {"message": f"AssertionError: directory {d!r} was not created", "detail": f"assert os.path.isdir({d!r})"}
    for rel in sorted(ref_files):
        want = ref_files[rel]
        if rel not in att_files:
            return {"message": f"AssertionError: {rel!r} was not written", "detail": f"assert os.path.exists({rel!r})"}
        got = att_files[rel]
        if rel.endswith(".json"):
            try:
                got_v, want_v = json.loads(got), json.loads(want)
            except ValueError as exc:
                return {"message": f"json.decoder.JSONDecodeError: {exc}", "detail": f"in {rel!r}: {short(got)}"}
            if not same(got_v, want_v, mode):
                return {"message": f"assert {short(got_v)} == {short(want_v)}",
                        "detail": f"+  where {short(got_v)} = the JSON in {rel!r}"}
        elif got != want:
            return {"message": f"assert {short(got)} == {short(want)}",
                    "detail": f"+  where {short(got)} = the text of {rel!r}"}
    return None


def run(job):
    work = job["work"]
    env0 = {"TZ": "UTC", "PATH": os.environ.get("PATH", ""), "HOME": work}
    write_package(os.path.join(work, "ref"), job["util"], job["module"], job["reference"])
    att_path = write_package(os.path.join(work, "att"), job["util"], job["module"], job["attempt"])
    where = "app/" + job["module"] + ".py"
    ref_func = import_function(os.path.join(work, "ref"), job["module"], job["name"])
    try:
        att_func = import_function(os.path.join(work, "att"), job["module"], job["name"])
    except BaseException as exc:
        failure = raised(exc, att_path, where)
        failure["message"] = "ERROR collecting " + job["test_id"].split("::")[0] + ": " + failure["message"]
        return {"passed": False, "failure": failure}
    for i, case in enumerate(job["cases"]):
        ref = call(ref_func, case, os.path.join(work, f"case{i}-ref"), env0)
        ref_snap = snapshot(os.path.join(work, f"case{i}-ref"))
        if ref[0] == "raised":
            return {"error": f"reference raised {ref[1]!r} on case {i}"}
        att = call(att_func, case, os.path.join(work, f"case{i}-att"), env0)
        args = ", ".join(short(a, 60) for a in case.get("args", []))
        shown = f"{job['name']}({args})"
        if att[0] == "raised":
            failure = raised(att[1], att_path, where)
            failure["case"] = i
            return {"passed": False, "failure": failure}
        if not same(att[1], ref[1], job["compare"]):
            return {"passed": False, "failure": {"message": f"assert {short(att[1])} == {short(ref[1])}",
                                                 "detail": f"+  where {short(att[1])} = {shown}", "row": None,
                                                 "case": i}}
        failure = compare_files(ref_snap, snapshot(os.path.join(work, f"case{i}-att")), job["compare"])
        if failure is not None:
            failure.update(row=None, case=i, detail=f"after {shown}: {failure['detail']}")
            return {"passed": False, "failure": failure}
    return {"passed": True}


def main():
    job = json.loads(sys.stdin.read())
    try:
        result = run(job)
    except BaseException as exc:  # anything the attempt does must end in one JSON answer
        result = {"error": f"harness: {type(exc).__name__}: {exc}"}
    sys.stdout.flush()
    os.write(1, ("\n@@RESULT@@" + json.dumps(result)).encode("utf-8"))


if __name__ == "__main__":
    main()
