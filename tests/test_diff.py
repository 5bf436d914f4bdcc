"""``diemthi diff``: the changed (candidate, subject) pairs between two real snapshots."""

import csv
import io

from click.testing import CliRunner

from diemthi import diff, store
from diemthi.cli import cli
from tests.chatbot_world import SCORES, import_scores


def test_diff_lists_each_changed_candidate_and_subject(data_dir, tmp_path):
    old = import_scores(data_dir, tmp_path)
    changed = (SCORES.replace("08000123,7.75,6.5,8.25", "08000123,8,6.5,8.25")
               .replace("08000124,5,6,,,,", "08000124,5,6.25,,,,")
               .replace("08000125,4,4.5,,,,\n", "") + "08000126,3,,,,,\n")
    new = import_scores(data_dir, tmp_path, changed)
    result = CliRunner().invoke(cli, ["diff", "--data-dir", str(data_dir), old, new],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows == [["sbd", "subject", "old", "new"],
                    ["08000123", "toan", "7.75", "8"],
                    ["08000124", "ngu_van", "6", "6.25"],
                    ["08000125", "ngu_van", "4.5", ""], ["08000125", "toan", "4", ""],
                    ["08000126", "toan", "", "3"]]
    assert not any("A00" in r or "D01" in r for r in rows)  # combinations are not listed
    same = CliRunner().invoke(cli, ["diff", "--data-dir", str(data_dir), old, old])
    assert same.output == "sbd,subject,old,new\n"
    missing = CliRunner().invoke(cli, ["diff", "--data-dir", str(data_dir), old, "nope"])
    assert missing.exit_code == 1


def test_changed_scores_between_two_documents():
    a = {"scores": {"toan": 7.75, "ngu_van": 6.5}}
    b = {"scores": {"toan": 8.0, "ngu_van": 6.5, "vat_li": 9.0}}
    assert diff.changed_scores(a, b) == [("toan", "7.75", "8"), ("vat_li", "", "9")]
    assert diff.changed_scores(a, a) == [] and diff.changed_scores(None, None) == []
