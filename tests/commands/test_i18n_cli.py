"""The command line in Japanese: the same one-line errors and progress lines, in the book's terms."""

from __future__ import annotations

import pytest

from tests.helpers import chainrule, offline_env


@pytest.mark.parametrize(
    ("args", "english", "japanese"),
    [
        (
            ("train", "--lr", "-1"),
            "chainrule: error: argument --lr: must be a positive number, not -1 (see 'chainrule train --help')",
            "chainrule: エラー: 引数 --lr：正の数でなければなりません（与えられた値：-1）（'chainrule train --help' を参照）",
        ),
        (
            ("trian",),
            "chainrule: error: argument command: invalid choice: 'trian'",
            "chainrule: エラー: 引数 command：無効な選択です：'trian'",
        ),
        (
            ("graph",),
            "chainrule: error: the following arguments are required: NAME (see 'chainrule graph --help')",
            "chainrule: エラー: 次の引数が必要です：NAME（'chainrule graph --help' を参照）",
        ),
        (
            ("train", "--iters", "10000000000"),
            "chainrule: error: --iters 10,000,000,000 is more than the limit of",
            "chainrule: エラー: --iters 10,000,000,000 は上限",
        ),
    ],
)
def test_an_error_is_one_line_in_either_language_with_the_same_status(args, english, japanese):
    en = chainrule(*args)
    ja = chainrule(*args, "--lang", "ja")
    assert en.returncode == ja.returncode == 2
    assert en.stdout == ja.stdout == ""
    assert len(en.stderr.splitlines()) == len(ja.stderr.splitlines()) == 1
    assert en.stderr.startswith(english) and ja.stderr.startswith(japanese)


def test_a_training_run_reports_in_japanese(tmp_path):
    env = {**offline_env(tmp_path), "CHAINRULE_LANG": "ja"}
    done = chainrule("train", "--iters", "30", "--out", str(tmp_path / "run"), env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("エポック   0  イテレーション      0  訓練データの認識精度 0.")
    assert lines[-2].startswith("最終（保存した重み、30 イテレーション後、")
    assert lines[-1] == "書き出しました：" + ", ".join(
        str(tmp_path / "run" / name) for name in ("metrics.csv", "accuracy.png", "params.npz", "run.json")
    )
    assert (
        "TwoLayerNet(784, 50, 10) を訓練データ 4,000 枚で学習し、テストデータ 1,000 枚で評価します"
        in done.stderr
    )
    # The saved files are the same in either language: only the sentences change.
    assert (
        (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,iteration,loss,train_acc,test_acc\n")
    )


def test_verify_reports_in_japanese():
    done = chainrule("verify", "--lang", "ja")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "最大の相対誤差（float64）：生成コードと SymPy（50 桁、折れ目でも）の差 <= 1e-12、中心差分との差 <= 1e-06"
    )
    assert lines[-1] == "すべての確認に合格"


def test_evaluate_reports_in_japanese_and_prints_the_same_matrix(tmp_path):
    env = offline_env(tmp_path)
    assert (
        chainrule("train", "--iters", "5", "--quiet", "--out", str(tmp_path / "run"), env=env).returncode == 0
    )
    en = chainrule("evaluate", str(tmp_path / "run"), env=env)
    ja = chainrule("evaluate", str(tmp_path / "run"), "--lang", "ja", env=env)
    assert en.returncode == ja.returncode == 0
    en_lines, ja_lines = en.stdout.splitlines(), ja.stdout.splitlines()
    assert ja_lines[0].startswith("テストデータの認識精度 0.") and ja_lines[0].endswith("枚）")
    assert ja_lines[1] == "混同行列（行：正解の数字、列：予測した数字）"
    assert ja_lines[2] == en_lines[2].replace("true\\pred", "正解\\予測")  # the same columns
    assert ja_lines[3:] == en_lines[3:]  # the numbers are the same in either language
    assert (
        "を chainrule に同梱のサンプル" in ja.stderr
        and "の MNIST（訓練データ 4,000 枚、テストデータ 1,000 枚） で評価します" in ja.stderr
    )


def test_lang_goes_before_or_after_the_subcommand_and_the_last_one_counts():
    assert chainrule("--lang=ja", "derive", "add").stdout.startswith(r"\section*{加算ノード}")
    assert chainrule("--lang", "ja", "derive", "add", "--lang", "en").stdout.startswith(
        r"\section*{Add node}"
    )
    unknown = chainrule("derive", "nope", "--lang", "ja")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        "chainrule: エラー: 導出 'nope' はありません。有効な名前：computational_graph, chain_rule, add,"
    )


def _helps(lang: str) -> dict[tuple[str, ...], str]:
    """Every description and option help of the command line, as built in ``lang``."""
    import argparse

    from chainrule import cli
    from chainrule.codegen import i18n

    with i18n.language(lang), cli._ArgparseSpeaks():
        parser = cli.build_parser()
    found: dict[tuple[str, ...], str] = {}

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        if p.description:
            found[(*path, "<description>")] = p.description
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    found[(*path, choice.dest)] = choice.help
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif action.help and action.help != argparse.SUPPRESS:
                found[(*path, action.dest)] = action.help

    walk(parser, ())
    return found


def test_every_help_text_is_in_japanese():
    en, ja = _helps("en"), _helps("ja")
    assert en.keys() == ja.keys() and len(en) > 50
    assert [key for key in en if en[key] == ja[key]] == []
    assert ja[("train", "iters")] == "イテレーション数（既定 10000）"
    assert en[("train", "iters")] == "iterations (default 10000)"


def test_help_in_japanese_names_argparse_sections_too():
    r = chainrule("derive", "--help", "--lang", "ja")
    assert r.returncode == 0
    assert r.stdout.startswith("使い方: chainrule derive")
    assert "\n位置引数:\n" in r.stdout and "\nオプション:\n" in r.stdout
    assert "  -h, --help            このヘルプを表示して終了します\n" in r.stdout
    assert "options:" not in r.stdout and "show this help" not in r.stdout


def test_the_accuracy_table_in_japanese_keeps_its_columns():
    import unicodedata

    from chainrule.checks.accuracy import Row, Worst, table
    from chainrule.codegen import i18n

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    rows = [Row("Sigmoid", Worst(1.88, -2.53e-05), Worst(2.6, 8.14)), Row("GELU", Worst(881.0, -19.2))]
    english = table(rows, 801)
    with i18n.language("ja"):
        japanese = table(rows, 801)
    assert (
        japanese[0]
        == "float64 を 50 桁の mpmath と比べます：801 点。|x| は 4.94066e-324 から 1.79769e+308 まで正負の両方、それに 0"
    )
    assert japanese[2].split() == ["関数", "順伝播", "位置", "x", "逆伝播", "位置", "x", "目標", "結果"]
    # Each heading ends at the column its numbers end at, as in English.
    assert width(japanese[2].rstrip("結果").rstrip()) == len(english[2].removesuffix("result").rstrip())
    assert japanese[3] == english[3].replace("pass", "合格")
    assert japanese[4].endswith("例外") and japanese[5].startswith(
        "  例外、GELU：順伝播の x sigmoid(2u) の精度は"
    )
