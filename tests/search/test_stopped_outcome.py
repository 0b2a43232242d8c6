"""A stop signal that lands after a search wrote every export and run.json `complete` (while the report is written
or Ray stops) leaves the run complete: `Outcome.write_stopped` (the main thread's and the deadline's writer) does not
turn it `interrupted`, and says nothing of resuming it."""
from __future__ import annotations

import json

from ecg.run_folder import RUN_FILE, RunFolder, RunRecord
from search.finish import Outcome
from search.signals import StopSignals


def test_a_late_signal_leaves_a_complete_run_complete(tmp_path, capsys) -> None:
    folder = RunFolder(tmp_path)
    folder.lock()
    folder.save(RunRecord(status="complete", space="ecgnet", seed=0, args={}, started="2026-12-06T21:00:00"))
    before = (tmp_path / RUN_FILE).read_text()
    stop = StopSignals()
    stop.received = 15
    outcome = Outcome(options=None, folder=folder, experiment=tmp_path / "tune", stop=stop, started=0.0)
    outcome.write_stopped(found=None, failure=None)  # nothing is read: the record says every export is written
    outcome.announce()
    assert (tmp_path / RUN_FILE).read_text() == before and json.loads(before)["status"] == "complete"
    assert "Search interrupted" not in capsys.readouterr().out
    folder.unlock()
