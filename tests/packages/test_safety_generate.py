"""generate: no user string becomes code, nothing chainrule did not write is replaced, every proof is bounded."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.codegen import generate
from chainrule.codegen.environment import shell_quote
from chainrule.packages import write
from chainrule.packages.marker import MARKER, Recorded
from tests.helpers import chainrule, error_line, offline_env

ROOT = Path(__file__).resolve().parents[2]
SWISH = '[[layer]]\nname = "Swish"\nforward = "x * sigmoid(beta * x)"\nconstants = { beta = 1.5 }\n'
# Proved equal in the parent, this took 41 s (four such layers 187 s), with no limit.
SLOW_PROOF = '[[layer]]\nname = "Cosh14"\nforward = "cosh(x)**14"\nsafe = "((exp(x) + exp(-x))/2)**14"\n'
EVIL = '__import__("os").system("touch PWNED3")'


def listing(folder: Path) -> list[str]:
    """The names in ``folder``, but the cache folder the commands were given."""
    return sorted(name for name in os.listdir(folder) if name != ".cache")


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a folder as "<dir>", a link as its target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "<dir>"
        else:
            found[rel] = path.read_bytes()
    return found


# ---------------------------------------------------------------- a folder name never becomes code


def _normalized(module: ast.Module) -> tuple[str, list[str]]:
    """The module's syntax tree with every ``PACKAGE = ...`` value blanked, and the values it held."""
    values = []
    for node in module.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PACKAGE"]:
            values.append(ast.literal_eval(node.value))
            node.value = ast.Constant("")
    return ast.dump(module), values


REFERENCE = {
    rel: _normalized(ast.parse(text))
    for rel, text in generate.render_all((), generate.regenerate_command("pkg"), "pkg").items()
}

# Any name a folder can have: every character but NUL and "/" (surrogates cannot be in a path
# given as text), newlines, quotes, backslashes, line and paragraph separators included.
FOLDER_NAMES = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00/"), min_size=1, max_size=40
).filter(lambda name: name not in (".", ".."))


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=FOLDER_NAMES | st.sampled_from([f"p\n{EVIL}\n#", 'a"""b', "x\\", "it's", "\u2028\r\x0c\x85"]))
def test_any_folder_name_stays_a_string_in_every_generated_module(name):
    files = generate.render_all((), generate.regenerate_command(name), name)
    assert files.keys() == REFERENCE.keys()
    for rel, text in files.items():
        tree, values = _normalized(ast.parse(text, rel))
        # the same code as for a plain name: nothing added, nothing cut short
        assert tree == REFERENCE[rel][0], rel
        assert values == ([name] if rel == "train_neuralnet.py" else []), rel
        # the header is three comment lines, whatever the name holds
        assert all(line.startswith("# ") for line in text.splitlines()[:3]), rel


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("mylayers", "mylayers"),
        ("my layers", "'my layers'"),
        ("p\nq", "$'p\\nq'"),
        ("it's\n", "$'it\\'s\\n'"),
        ("a\\b\u2028", "$'a\\\\b\\u2028'"),
    ],
)
def test_a_name_in_a_command_is_one_shell_word_on_one_line(text, quoted):
    assert shell_quote(text) == quoted
    assert quoted.isprintable()


def test_the_reproducer_runs_nothing_when_generating_or_importing(tmp_path):
    (tmp_path / "swish.toml").write_text(SWISH)
    name = f"p\n{EVIL}\n#"
    r = chainrule("generate", "--spec", "swish.toml", "--out", name, cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    package = tmp_path / name
    assert (package / "layers.py").is_file() and not (tmp_path / "PWNED3").exists()
    assert (
        ast.literal_eval(
            next(
                line
                for line in (package / "train_neuralnet.py").read_text().splitlines()
                if line.startswith("PACKAGE")
            )
            .split("=", 1)[1]
            .strip()
        )
        == name
    )
    # every module imported, as a user of the package would
    load = (
        "import importlib, importlib.util, sys\n"
        "folder = sys.argv[1]\n"
        "spec = importlib.util.spec_from_file_location('pkg', folder + '/__init__.py',"
        " submodule_search_locations=[folder])\n"
        "sys.modules['pkg'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(sys.modules['pkg'])\n"
        "for m in ('layers', 'multi_layer_net', 'two_layer_net', 'train_neuralnet', 'gradient_check'):\n"
        "    importlib.import_module('pkg.' + m)\n"
        "print(sys.modules['pkg.train_neuralnet'].PACKAGE == sys.argv[1].rsplit('/', 1)[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", load, str(package)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == "True\n", done.stderr
    assert not (tmp_path / "PWNED3").exists()


# ---------------------------------------------------------------- only what chainrule wrote is replaced


@pytest.fixture
def package(tmp_path):
    """A package as ``generate --out pkg`` makes it (built without the proofs, which take seconds)."""
    out = tmp_path / "pkg"
    out.mkdir()
    write.build(out)
    return out


def test_files_a_user_added_to_a_package_stop_generate_and_are_kept(tmp_path, package):
    (package / "my_experiment.py").write_text("print('mine')\n")
    (package / "mydata").mkdir()
    (package / "mydata" / "results.csv").write_text("epoch,acc\n1,0.9\n")
    (package / "layers.py").unlink()  # so that generate has something to write
    before = snapshot(package)
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert "chainrule: error: " + error_line(r) == (
        f"chainrule: error: refusing to replace {package}: chainrule did not write {package}/my_experiment.py;"
        " move it out of the package first"
    )
    assert snapshot(package) == before
    (package / "my_experiment.py").unlink()
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert f"chainrule did not write {package}/mydata;" in "chainrule: error: " + error_line(r)
    assert (package / "mydata" / "results.csv").read_text() == "epoch,acc\n1,0.9\n"
    assert listing(tmp_path) == ["pkg"]  # no staging folder left


def test_a_file_the_user_changed_stops_generate_and_is_kept(tmp_path, package):
    layers = package / "layers.py"
    layers.write_text(layers.read_text() + "# my note\n")
    (package / "two_layer_net.py").unlink()
    before = snapshot(package)
    with pytest.raises(generate.GenerateError) as caught:
        write.generate(package)
    assert str(caught.value) == (
        f"refusing to replace {package}: {layers} changed since chainrule wrote it;"
        " save your changes elsewhere and remove it first"
    )
    assert snapshot(package) == before


def test_byte_code_caches_are_chainrules_to_replace(package):
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\x00cache")
    (package / "layers.py").unlink()
    result = write.generate(package)
    assert result.changed == ("layers.py",)
    assert sorted(os.listdir(package)) == [MARKER, *sorted(write.STANDARD_FILES - {"spec.toml"})]


def test_a_file_created_while_generating_is_kept(package):
    (package / "layers.py").unlink()
    before = snapshot(package)
    late = package / "notes.txt"

    def meanwhile(staging):  # runs once the new package is built, before it is swapped in
        late.write_text("written while generate worked")

    with pytest.raises(generate.GenerateError, match=f"chainrule did not write {late};"):
        write.generate(package, accept=meanwhile)
    assert late.read_text() == "written while generate worked"
    late.unlink()
    assert snapshot(package) == before
    assert sorted(p.name for p in package.parent.iterdir()) == ["pkg"]


def test_a_file_created_after_the_last_check_makes_the_swap_go_back(tmp_path, package):
    """The old tree is checked again once swapped out; a newcomer puts it back, whole."""
    (package / "layers.py").unlink()
    staging = tmp_path / ".pkg.staging"
    staging.mkdir()
    write.build(staging)
    new = snapshot(staging)
    write.check_ours(package)  # the last check before the swap passes ...
    (package / "late.csv").write_text("1,2\n")  # ... then a file appears
    before = snapshot(package)
    with pytest.raises(generate.GenerateError, match=f"chainrule did not write {package}/late.csv;"):
        write._install(staging, package)
    assert snapshot(package) == before
    assert not staging.exists() and new  # the new tree is dropped, the old one back in place


def test_foreign_entry_names_what_is_not_chainrules(package):
    assert write.foreign_entry(package) is None
    (package / "sub").mkdir()
    assert write.foreign_entry(package) == ("sub", "foreign")
    (package / "sub").rmdir()
    (package / "layers.py").unlink()
    (package / "layers.py").symlink_to("gradient_check.py")
    assert write.foreign_entry(package) == ("layers.py", "changed")
    (package / "layers.py").unlink()
    assert write.foreign_entry(package) is None  # a missing file of chainrule's loses nothing


# ---------------------------------------------------------------- a replaced folder keeps its mode


def test_a_private_folder_stays_private(tmp_path):
    private = tmp_path / "pkg"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o700
    (private / "layers.py").unlink()
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0 and "wrote" in r.stderr, r.stderr
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o700


# ---------------------------------------------------------------- nothing left in the current folder


def test_generate_leaves_nothing_in_the_current_folder(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    r = chainrule("generate", "--out", str(tmp_path / "pkg"), cwd=here, env=offline_env(here))
    assert r.returncode == 0, r.stderr
    assert listing(here) == [] and not (here / ".ruff_cache").exists()
    assert listing(tmp_path) == ["here", "pkg"]


# ---------------------------------------------------------------- every proof within the limits


def test_a_proof_that_takes_too_long_is_stopped_at_the_limit(tmp_path):
    (tmp_path / "slow.toml").write_text(SLOW_PROOF)
    r = chainrule("generate", "--spec", "slow.toml", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert "chainrule: error: " + error_line(r) == (
        "chainrule: error: slow.toml:1: Cosh14: the derivation took longer than 5 s (the limit); try a simpler formula"
    )
    assert not (tmp_path / "pkg").exists()


def test_proofs_made_in_the_child_are_not_made_again(tmp_path):
    from chainrule.packages.bounded import derive_bounded
    from chainrule.packages.specfile import read_specs

    (tmp_path / "swish.toml").write_text(SWISH.replace("Swish", "Swish2"))
    (sd,) = derive_bounded(read_specs(str(tmp_path / "swish.toml")), prove=True)
    from chainrule.symbolic import core

    proofs = sd.derivation.identities + tuple(p for k in sd.derivation.kernels for p in k.proofs)
    assert proofs and all(identity in core._PROVED for identity in proofs)


def test_only_chainrules_files_are_removed_from_a_replaced_tree(package):
    """What appears in the old tree after it is swapped out (through an open folder) stays, and is named."""
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\x00cache")
    assert write._remove_ours(package) is None and not package.exists()
    package.mkdir()
    write.build(package)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "mine.txt").write_text("late")
    assert write._remove_ours(package) == package
    assert snapshot(package) == {"__pycache__": "<dir>", "__pycache__/mine.txt": b"late"}


def test_an_edited_spec_is_no_loss_only_when_it_is_the_spec_generated_from(tmp_path):
    """``chainrule generate --package`` after editing spec.toml (the documented way) goes on;
    ``--spec other.toml --out pkg`` would overwrite the edit, and is refused."""
    out = tmp_path / "pkg"
    out.mkdir()
    write.build(out, recorded=Recorded(SWISH, "0.1.0"), package="pkg")
    edited = SWISH.replace("1.5", "2.0").encode()
    (out / "spec.toml").write_bytes(edited)
    assert write.foreign_entry(out) == ("spec.toml", "changed")
    assert write.foreign_entry(out, {"spec.toml": b"another spec"}) == ("spec.toml", "changed")
    assert write.foreign_entry(out, {"spec.toml": edited}) is None


# -- a marker chainrule did not seal

UNSEALED = (
    "refusing to replace {out}: its .chainrule-package was not sealed by chainrule on this account,"
    " so the files it lists may not be chainrule's; move the folder away or delete it yourself"
)


def _list_in_marker(folder: Path, name: str, seal: str | None = None) -> None:
    """Add ``name`` with its true SHA-256 to the marker's file list, as a forger would (keeping ``seal``)."""
    import hashlib
    import json

    marker = json.loads((folder / MARKER).read_text()) if (folder / MARKER).exists() else {}
    marker.update(generator="chainrule", version=1)
    marker.setdefault("files", {})[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    if seal is not None:
        marker["seal"] = seal
    (folder / MARKER).write_text(json.dumps(marker))


def test_an_unsealed_marker_that_lists_a_users_file_is_refused_and_the_file_kept(tmp_path):
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "notes.txt").write_text("my precious\n")
    _list_in_marker(forged, "notes.txt")
    before = snapshot(forged)
    r = chainrule("generate", "--out", "forged", cwd=tmp_path, env=offline_env(tmp_path))
    assert error_line(r) == UNSEALED.format(out=forged)
    assert snapshot(forged) == before
    assert listing(tmp_path) == ["forged"]
    g = chainrule(
        "generate", "--package", "forged", cwd=tmp_path, env=offline_env(tmp_path)
    )  # regenerating in place: refused too
    assert error_line(g) and snapshot(forged) == before


def test_a_staging_named_folder_with_an_unsealed_marker_is_left_alone(tmp_path):
    out = tmp_path / "pkg"
    out.mkdir()
    write.build(out)
    (out / "layers.py").unlink()  # so that generate has something to write
    staging = tmp_path / ".pkg.chainrule-staging-99999-0123456789abcdef"
    staging.mkdir()
    (staging / "notes.txt").write_text("precious\n")
    _list_in_marker(staging, "notes.txt")
    before = snapshot(staging)
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0 and "wrote" in r.stderr, r.stderr
    assert snapshot(staging) == before
    assert listing(tmp_path) == [staging.name, "pkg"]


def test_a_file_added_to_a_sealed_markers_list_breaks_the_seal(tmp_path, package):
    """The seal covers the whole list: a real seal kept on a longer list no longer holds."""
    import json

    from chainrule.packages.marker import PackageError, check_package

    seal = json.loads((package / MARKER).read_text())["seal"]
    (package / "notes.txt").write_text("my precious\n")
    _list_in_marker(package, "notes.txt", seal)
    (package / "layers.py").unlink()
    before = snapshot(package)
    with pytest.raises(generate.GenerateError) as caught:
        write.generate(package)
    assert str(caught.value) == UNSEALED.format(out=package)
    assert snapshot(package) == before
    with pytest.raises(PackageError, match="does not carry this account's seal"):
        check_package(package)  # nor is any of its code imported


def test_a_package_generated_on_another_account_is_refused(tmp_path):
    other = {"XDG_CACHE_HOME": str(tmp_path / "other-account")}
    made = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path, other))
    assert made.returncode == 0, made.stderr
    package = tmp_path / "pkg"
    (package / "layers.py").unlink()
    before = snapshot(package)
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert error_line(r) == UNSEALED.format(out=package)
    assert snapshot(package) == before
    again = chainrule(
        "generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path, other)
    )  # on its own account it is chainrule's
    assert again.returncode == 0 and "wrote" in again.stderr, again.stderr
    assert (package / "layers.py").is_file()


def test_a_marker_that_lists_no_files_is_refused(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / MARKER).write_text('{"generator": "chainrule", "version": 1}')
    (old / "layers.py").write_text("# mine\n")
    before = snapshot(old)
    with pytest.raises(generate.GenerateError) as caught:
        write.generate(old)
    assert str(caught.value) == UNSEALED.format(out=old)
    assert snapshot(old) == before


def test_regenerating_ones_own_package_still_replaces_it(tmp_path):
    made = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert made.returncode == 0, made.stderr
    package = tmp_path / "pkg"
    (package / "layers.py").unlink()
    r = chainrule("generate", "--out", "pkg", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0 and r.stderr.startswith(f"wrote {package}: layers.py\n"), r.stderr
    assert (package / "layers.py").is_file()


def test_the_source_checkouts_unsealed_generated_is_still_checked_and_regenerated(tmp_path):
    import json

    assert "seal" not in json.loads((ROOT / "generated" / MARKER).read_text())
    r = chainrule("generate", "--check", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0 and "up to date" in r.stdout + r.stderr, r.stderr
    before = snapshot(ROOT / "generated")
    result = write.generate(write.DEFAULT_OUT)  # the source checkout's generated/: nothing to change
    assert result.changed == () and snapshot(ROOT / "generated") == before


def test_a_seal_of_any_shape_is_only_not_this_accounts(tmp_path, package):
    import json

    from chainrule.packages.marker import marker_sealed, read_marker

    marker = read_marker(package)
    assert marker is not None and marker_sealed(marker)
    for seal in ("é" * 64, "0" * 64, "", 64, None, ["a"]):
        assert not marker_sealed({**marker, "seal": seal})
    (package / MARKER).write_text(json.dumps({**marker, "seal": "é" * 64}))
    (package / "layers.py").unlink()
    with pytest.raises(generate.GenerateError) as caught:
        write.generate(package)
    assert str(caught.value) == UNSEALED.format(out=package)
