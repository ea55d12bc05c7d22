"""Where a scenario's cells run. `local`: one after another on this machine (runner/supervisor.run_cell,
driven by runner/execute.py). `ray`: one Ray task per cell (executors/ray.py) running the same run_cell on a
worker node. Signals, the run lock, resume and disk-full handling stay in runner/execute.py for both."""
