"""Tables port: conditional updates of matched rows, deletes by key, and the bounded max (local Delta)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from workloads.ports.tables import LocalTables

NAME = "cat.sch.events"


def day(n: int, label=None) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"{n}-{i}" for i in range(3)], "label": pd.array([label] * 3, dtype="Int64"),
                         "ts": pd.to_datetime([f"2030-01-0{n + 1} 0{i}:00" for i in range(3)], utc=True)})


def files(tables: LocalTables) -> set[str]:
    return set(pa.table(tables._table(NAME).get_add_actions(flatten=True)).column("path").to_pylist())


def test_update_matched_rewrites_only_changed_files_and_commits_nothing_when_nothing_differs(tmp_path):
    tables = LocalTables(tmp_path)
    for n in range(3):
        tables.write(NAME, day(n, label=1 if n == 0 else None))
    before, version = files(tables), tables.version(NAME)
    source = pd.DataFrame({"id": ["0-0", "2-1", "nowhere"], "label": [1, 5, 9]})  # 0-0 already has label 1

    assert tables.update_matched(NAME, source, keys=["id"], columns=["label"]) == 1
    assert len(before - files(tables)) == 1 and tables.version(NAME) == version + 1
    assert tables.read(NAME).set_index("id")["label"].dropna().to_dict() == {"0-0": 1, "0-1": 1, "0-2": 1, "2-1": 5}
    assert tables.update_matched(NAME, source, keys=["id"], columns=["label"]) == 0
    assert tables.version(NAME) == version + 1  # nothing differed: no commit
    assert len(tables.read(NAME)) == 9  # unmatched source rows are not inserted


def test_update_matched_since_leaves_older_rows_alone(tmp_path):
    tables = LocalTables(tmp_path)
    for n in range(3):
        tables.write(NAME, day(n))
    source = pd.DataFrame({"id": ["0-0", "2-0"], "label": [3, 4]})

    updated = tables.update_matched(NAME, source, keys=["id"], columns=["label"],
                                    since=("ts", pd.Timestamp("2030-01-02", tz="UTC")))

    assert updated == 1
    assert tables.read(NAME).set_index("id")["label"].dropna().to_dict() == {"2-0": 4}


def test_delete_keys_is_one_commit(tmp_path):
    tables = LocalTables(tmp_path)
    tables.write(NAME, pd.concat([day(0), day(1)]))
    version = tables.version(NAME)

    assert tables.delete_keys(NAME, pd.DataFrame({"id": ["0-0", "1-2", "1-2", "gone"]}), "id") == 2
    assert tables.version(NAME) == version + 1
    assert sorted(tables.read(NAME)["id"]) == ["0-1", "0-2", "1-0", "1-1"]
    assert tables.delete_keys(NAME, pd.DataFrame({"id": []}), "id") == 0 and tables.version(NAME) == version + 1
