"""Reading user data: JSONL files of examples, validated line by line before any work starts.

Each line is a JSON object with a non-empty string "prompt" and an "answer" (string or number);
other fields are kept (e.g. "verifier", "lang"). Errors name the file, the line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

MAX_LINE_BYTES = 1_000_000


def load_examples(path: str | Path, required=("prompt", "answer")) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None
    if b"\x00" in raw[:4096]:
        raise UserError(f"{path}: looks like a binary file, expected JSON Lines text (one object per line)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 text") from None
    examples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            raise UserError(f"{path}:{lineno}: line is longer than {MAX_LINE_BYTES} characters")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        row.setdefault("_line", lineno)
        examples.append(check_row(row, f"{path}:{lineno}", required))
    if not examples:
        raise UserError(f"{path}: no examples (the file is empty)")
    return examples


TEXT_FIELDS = ("completion", "chosen", "rejected", "response")  # strings when required (may be empty)


def check_row(row: dict, where: str, required=("prompt", "answer")) -> dict:
    """One example checked: the required fields present, "prompt" a non-empty string, "answer" a
    string or a number (kept as a string), "completion"/"chosen"/"rejected"/"response" strings,
    "label" (or "safe") 0 or 1 (kept as an int "label"). Every other field is kept as it is."""
    if "label" in required and "label" not in row and "safe" in row:  # safety labels may say "safe" instead
        row["label"] = row["safe"]
    for field in required:
        if field not in row:
            raise UserError(f"{where}: missing field {field!r} (each line needs {', '.join(required)})")
    if "prompt" in required and (not isinstance(row["prompt"], str) or not row["prompt"].strip()):
        raise UserError(f"{where}: field 'prompt' must be a non-empty string")
    for field in TEXT_FIELDS:
        if field in required and not isinstance(row[field], str):
            raise UserError(f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}")
    if "label" in required:
        if row["label"] not in (0, 1, "0", "1") or isinstance(row["label"], float):
            raise UserError(f"{where}: field 'label' must be 0 (unsafe) or 1 (safe), got {row['label']!r}")
        row["label"] = int(row["label"])
    if "answer" in required:
        if isinstance(row["answer"], bool) or not isinstance(row["answer"], (str, int, float)):
            raise UserError(f"{where}: field 'answer' must be a string or a number, got {type(row['answer']).__name__}")
        row["answer"] = str(row["answer"])
    return row


def check_rows(rows, source: str, required=("prompt", "answer")) -> list[dict]:
    """Examples from any source (a file's rows, a list of dicts, a datasets.Dataset), each checked;
    errors name the file and line (JSONL) or the row."""
    out = []
    for i, row in enumerate(rows):
        where = f"{source}:{row['_line']}" if isinstance(row, dict) and "_line" in row else f"{source}: row {i}"
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a dict with {', '.join(required)}, got {type(row).__name__}")
        out.append(check_row(dict(row), where, required))
    if not out:
        raise UserError(f"{source}: no examples")
    return out


def read_data(path: str | Path, required=("prompt", "answer")) -> list[dict]:
    """The checked rows of a data file: JSONL, Parquet or a `save_to_disk` folder (the one reader of
    every stage's files; errors name the file and line or row, and the field)."""
    return check_rows(rows_of(str(path), str(path)), str(path), required)


def rows_of(data, source: str = "data", split: str = "train") -> list[dict]:
    """The rows of `data`: a list of dicts, a `datasets.Dataset`, or a path (JSONL, Parquet or a
    `save_to_disk` folder, told apart by what it is). `split` picks the split of a folder that
    holds several: "train" for training data, "test" for evaluation data."""
    if isinstance(data, (str, Path)):
        from .library import read_rows

        return read_rows(str(data), split)
    if hasattr(data, "to_list") and hasattr(data, "column_names"):  # a datasets.Dataset
        return data.to_list()
    if hasattr(data, "keys") and hasattr(data, "column_names"):  # a DatasetDict
        raise UserError(f"{source}: a DatasetDict with splits {sorted(data.keys())}: pass one split, e.g. ds['train']")
    if isinstance(data, (list, tuple)):
        return list(data)
    raise UserError(f"{source}: expected a list of dicts, a datasets.Dataset or a file path, got {type(data).__name__}")
