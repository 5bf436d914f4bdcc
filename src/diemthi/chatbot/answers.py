"""The Sở's answers to what students ask (điểm chuẩn, phúc khảo, ...), from a TOML file.

The package ships defaults (``diemthi/data/answers.toml``); a province names its own file
in ``DIEMTHI_CHATBOT_ANSWERS`` and every key it gives replaces the default. A key we do
not know, or a value that is not text, stops the start: a typo must not silently leave
students with the default answer.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from ..settings import SettingsError

KEYS = ("diem_chuan", "phuc_khao", "tot_nghiep", "quen_sbd", "cam_on", "lien_he")


class AnswersError(SettingsError):
    """The answers file cannot be used; the message names the file and the key."""


def defaults() -> dict[str, str]:
    text = resources.files("diemthi").joinpath("data", "answers.toml").read_text("utf-8")
    return tomllib.loads(text)


def load(path: Path | None) -> dict[str, str]:
    """Key → Vietnamese text: the shipped defaults, overridden by ``path`` when given."""
    answers = defaults()
    if path is None:
        return answers
    try:
        given = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AnswersError(f"DIEMTHI_CHATBOT_ANSWERS: không đọc được {path}: {exc}") from exc
    for key, value in given.items():
        if key not in KEYS:
            raise AnswersError(f"{path}: khóa '{key}' không dùng được; các khóa: {', '.join(KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise AnswersError(f"{path}: '{key}' phải là một đoạn văn bản")
        answers[key] = value.strip()
    return answers
