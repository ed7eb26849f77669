"""-o FILE replaces only what chainrule wrote there and nobody changed since (outputs.json in its cache)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.cli import main
from chainrule.fs import ledger
from chainrule.fs.ledger import NotOurs, ledger_path, write_output, write_output_text
from tests.helpers import chainrule, offline_env

REFUSAL = "chainrule did not write it, or it was changed since; move it away or name another file"


@pytest.mark.parametrize(
    "command",
    [["derive", "sigmoid"], ["derive", "relu", "--format", "markdown"], ["graph", "apples"], ["notebook"]],
)
def test_a_users_file_is_refused_and_kept(tmp_path, capsys, command):
    mine = tmp_path / "notes.txt"
    mine.write_text("my own notes\n")
    assert main([*command, "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err == f"chainrule: error: cannot write {mine}: {REFUSAL}\n"
    assert mine.read_text() == "my own notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no temporary file left


def test_its_own_output_is_replaced(tmp_path):
    out = tmp_path / "d.tex"
    assert main(["derive", "mul", "-o", str(out)]) == 0
    assert out.read_text().startswith("\\section*{Multiply node}")
    assert main(["derive", "sigmoid", "-o", str(out)]) == 0
    assert out.read_text().startswith("\\section*{Sigmoid}")


def test_its_output_edited_by_the_user_is_refused(tmp_path, capsys):
    out = tmp_path / "d.tex"
    assert main(["derive", "mul", "-o", str(out)]) == 0
    edited = out.read_text() + "% my remark\n"
    out.write_text(edited)
    capsys.readouterr()
    assert main(["derive", "sigmoid", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"chainrule: error: cannot write {out}: {REFUSAL}\n"
    assert out.read_text() == edited


def test_the_same_bytes_are_rewritten_without_a_record(tmp_path):
    out = tmp_path / "apples.svg"
    assert main(["graph", "apples", "-o", str(out)]) == 0
    text = out.read_text()
    ledger_path().unlink()  # the cache was cleared: nothing recorded
    assert main(["graph", "apples", "-o", str(out)]) == 0  # nothing is lost by writing the same bytes
    assert out.read_text() == text


def test_two_spellings_of_one_file_agree(tmp_path):
    (tmp_path / "sub").mkdir()
    write_output_text(tmp_path / "sub" / "a.md", "first\n")
    write_output_text(tmp_path / "sub" / ".." / "sub" / "a.md", "second\n")
    assert (tmp_path / "sub" / "a.md").read_text() == "second\n"


def test_a_list_not_in_its_format_is_left_alone(tmp_path):
    ledger = ledger_path()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    saved = ledger.read_bytes() if ledger.exists() else None
    try:
        ledger.write_text("someone else's file\n")
        write_output_text(tmp_path / "new.txt", "one\n")  # a new file is still written
        assert (tmp_path / "new.txt").read_text() == "one\n"
        assert ledger.read_text() == "someone else's file\n"  # and the list is not written over
        with pytest.raises(NotOurs):  # so nothing vouches for the file: it is not replaced
            write_output_text(tmp_path / "new.txt", "two\n")
        assert (tmp_path / "new.txt").read_text() == "one\n"
    finally:
        if saved is None:
            ledger.unlink()
        else:
            ledger.write_bytes(saved)


def test_the_list_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "LEDGER_LIMIT", 3)
    paths = [tmp_path / f"f{i}.txt" for i in range(5)]
    for p in paths:
        write_output_text(p, "a\n")
    remembered = json.loads(ledger_path().read_text())["files"]
    assert [k for k in remembered if k.startswith(str(tmp_path))] == [str(p) for p in paths[2:]]
    with pytest.raises(NotOurs):  # forgotten: no longer replaced
        write_output_text(paths[0], "b\n")
    write_output_text(paths[4], "b\n")
    assert paths[4].read_text() == "b\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(theirs=st.binary(max_size=2000), ours=st.binary(min_size=1, max_size=2000))
def test_any_file_it_did_not_write_is_kept(tmp_path, theirs, ours):
    target = tmp_path / "theirs.bin"
    target.write_bytes(theirs)
    if theirs == ours:
        write_output(target, ours)  # the same bytes: nothing to lose
    else:
        with pytest.raises(NotOurs):
            write_output(target, ours)
    assert target.read_bytes() == theirs
    target.unlink()


def test_a_refusal_in_japanese(tmp_path, capsys):
    mine = tmp_path / "notes.tex"
    mine.write_text("mine\n")
    assert main(["derive", "add", "-o", str(mine), "--lang", "ja"]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: エラー: {mine} を書き出せません：chainrule が書いたファイルではないか、"
        "書いた後に変更されています。移動するか、別のファイル名を指定してください\n"
    )


def test_evaluate_refuses_a_users_png(tmp_path):
    env = offline_env(tmp_path)

    run = tmp_path / "run"
    assert chainrule("train", "--iters", "1", "--quiet", "--out", str(run), env=env).returncode == 0
    mine = tmp_path / "matrix.png"
    mine.write_bytes(b"\x89PNG mine")
    r = chainrule("evaluate", str(run), "-o", str(mine), env=env)
    # refused before the work: nothing printed but the one line
    assert (r.returncode, r.stderr, r.stdout) == (
        2,
        f"chainrule: error: cannot write {mine}: {REFUSAL}\n",
        "",
    )
    assert mine.read_bytes() == b"\x89PNG mine"
    ours = tmp_path / "new.png"
    assert chainrule("evaluate", str(run), "-o", str(ours), env=env).returncode == 0
    ours.write_bytes(ours.read_bytes()[:-1] + b"\x00")  # changed by someone after chainrule wrote it
    assert chainrule("evaluate", str(run), "-o", str(ours), env=env).returncode == 2
    ours.unlink()
    write_output(ours, b"\x89PNG older")  # an older output of chainrule's, recorded as such
    assert chainrule("evaluate", str(run), "-o", str(ours), env=env).returncode == 0
    assert ours.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(ours) > 1000


def test_a_file_that_appears_while_writing_is_never_replaced(tmp_path, monkeypatch):
    target = tmp_path / "r.tex"
    real_fsync = os.fsync

    def user_writes_meanwhile(fd):
        real_fsync(fd)
        target.write_text("USER PRECIOUS DATA\n")  # between the check and the rename

    monkeypatch.setattr(ledger.os, "fsync", user_writes_meanwhile)
    with pytest.raises(NotOurs):
        write_output_text(target, "chainrule's\n")
    assert target.read_text() == "USER PRECIOUS DATA\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tex"]


def test_identical_bytes_are_left_alone_and_not_claimed(tmp_path):
    mine = tmp_path / "priv.tex"
    mine.write_text("same\n")
    mine.chmod(0o600)
    link = tmp_path / "link.tex"
    os.link(mine, link)
    before = os.stat(mine)
    write_output_text(mine, "same\n")
    after = os.stat(mine)
    assert (after.st_ino, after.st_mode & 0o777, after.st_nlink) == (before.st_ino, 0o600, 2)
    with pytest.raises(NotOurs):  # still the user's: not replaced by other content
        write_output_text(mine, "other\n")
    assert mine.read_text() == "same\n"


def test_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_output_text(tmp_path / "n.tex", "x\n")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "n.tex").st_mode & 0o777 == 0o600


def test_a_name_that_is_not_utf8_is_remembered(tmp_path):
    name = os.fsdecode(b"bad\xff.tex")
    write_output_text(tmp_path / name, "one\n")
    write_output_text(tmp_path / name, "two\n")  # its own output: replaced
    assert (tmp_path / name).read_text() == "two\n"


def test_names_that_are_not_files_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("nothere.tex/", ""):
        assert main(["derive", "add", "-o", bad]) == 2
        assert capsys.readouterr().err == (
            f"chainrule: error: cannot write {bad}: a file name is needed here, not a folder\n"
        )
    assert list(tmp_path.iterdir()) == []
    odd = tmp_path / "new\nline.tex"
    odd.write_text("mine\n")
    assert main(["derive", "add", "-o", str(odd)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and repr(str(odd)) in err


def test_a_deeply_nested_or_huge_list_is_left_alone(tmp_path):
    ledger = ledger_path()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    saved = ledger.read_bytes() if ledger.exists() else None
    try:
        ledger.write_text("[" * 100_000)
        write_output_text(tmp_path / "a.tex", "a\n")  # written; the list is not touched
        assert (tmp_path / "a.tex").read_text() == "a\n" and ledger.read_text() == "[" * 100_000
    finally:
        ledger.unlink()
        if saved is not None:
            ledger.write_bytes(saved)


def test_the_list_stays_within_its_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "LEDGER_MAX_BYTES", 20_000)
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    for i in range(120):
        write_output_text(deep / f"f{i}.svg", "x\n")
    assert ledger_path().stat().st_size <= 10_000
    write_output_text(deep / "f119.svg", "y\n")  # the newest are still known
    assert (deep / "f119.svg").read_text() == "y\n"


def _write_many(args):
    path, text = args
    from chainrule.fs.ledger import write_output_text

    write_output_text(path, text)


def test_concurrent_writers_lose_no_record(tmp_path):
    import multiprocessing

    jobs = [(str(tmp_path / f"f{i}.tex"), f"first {i}\n") for i in range(12)]
    jobs += [(str(tmp_path / "same.tex"), f"round {i}\n") for i in range(6)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        pool.map(_write_many, jobs)
    for i in range(12):  # each is chainrule's, unchanged: replaced
        write_output_text(tmp_path / f"f{i}.tex", "second\n")
    write_output_text(tmp_path / "same.tex", "second\n")
    assert {p.read_text() for p in tmp_path.iterdir()} == {"second\n"}
