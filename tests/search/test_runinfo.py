"""run.json as a RunRecord: what is written, what is read back, what --resume refuses."""
import json

import pytest

from search.options import OptionError
from search.runinfo import RUN_FILE, RunRecord, read, read_for_resume, write


def _record() -> RunRecord:
    return RunRecord(status="running", space="gru", seed=3, args={"space": "gru", "seed": 3},
                     data={"fingerprint": "abc"})


def test_written_record_reads_back_and_leaves_out_what_is_unset(tmp_path) -> None:
    record = _record()
    record.fit_started, record.skipped_winners = 1700000000.5, []
    write(tmp_path, record)
    text = json.loads((tmp_path / RUN_FILE).read_text())
    assert text["status"] == "running" and text["fit_started"] == 1700000000.5
    assert text["skipped_winners"] == []  # an empty list is a fact (no checkpoint was skipped)
    assert "failure" not in text and "resumes" not in text and "winners" not in text  # never set
    assert text["updated"]
    again = read(tmp_path)
    assert again.to_dict() == text


def test_keys_of_another_version_survive_a_rewrite(tmp_path) -> None:
    values = {**_record().to_dict(), "from_the_future": {"x": 1}}
    (tmp_path / RUN_FILE).write_text(json.dumps(values))
    record = read(tmp_path)
    assert record.other == {"from_the_future": {"x": 1}}
    record.status = "complete"
    write(tmp_path, record)
    assert json.loads((tmp_path / RUN_FILE).read_text())["from_the_future"] == {"x": 1}


def test_space_and_seed_come_from_the_arguments_when_missing(tmp_path) -> None:
    (tmp_path / RUN_FILE).write_text(json.dumps({"status": "interrupted", "args": {"space": "lstm", "seed": 5},
                                                 "data": {}}))
    record = read_for_resume(tmp_path)
    assert (record.space, record.seed, record.status) == ("lstm", 5, "interrupted")


@pytest.mark.parametrize("text, message", [("{", "is unreadable"), ('{"status": "running"}', "lacks args, data")])
def test_resume_refuses_a_record_it_cannot_use(tmp_path, text, message) -> None:
    (tmp_path / RUN_FILE).write_text(text)
    with pytest.raises(OptionError, match=message):
        read_for_resume(tmp_path)
