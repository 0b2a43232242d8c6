"""Ray Tune + Optuna orchestration: the only package that imports ray.

    from search import SearchOptions, run
    run_dir = run(SearchOptions(space="ecgnet"))      # results/ecgnet-<timestamp>/
"""
from search.options import OptionError, SearchOptions
from search.runner import SearchInterrupted, resume_command, run

__all__ = ["OptionError", "SearchInterrupted", "SearchOptions", "resume_command", "run"]
