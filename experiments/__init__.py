"""The experiment scripts (`python experiments/<name>.py`), importable as `experiments.<name>`: the package is
installed with zerogr_jax, so the scripts import each other (`from experiments import result_files`) without editing
sys.path. Their configs live in `experiments/configs/` (loaded by path) and their records in `experiments/results/`.
"""
