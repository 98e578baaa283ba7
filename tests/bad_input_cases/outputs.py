"""Bad output locations: a file where a folder is expected, a location nobody may write."""

from pathlib import Path

# Root may write anywhere a mode bit forbids; sysfs refuses new entries to everyone.
UNWRITABLE = "/sys/router_lab_corpus"


def make_file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a folder\n")


def make_file_and_csv(tmp: Path) -> None:
    make_file(tmp)
    (tmp / "bench.csv").write_text("prompt,small,big\nwhat is 2+2?,True,True\nprove it,False,True\n"
                                   "name a prime,True,True\nsum 1..10,False,True\n")


def multirun_root_is_file(tmp: Path) -> None:
    (tmp / "outputs").mkdir()
    (tmp / "outputs" / "multirun").write_text("not a folder\n")


def trained_router_and_file(tmp: Path) -> None:
    """A real `router-lab train` folder (trained here on the copied digits) and a file in the way."""
    from router_lab.data.files import load_dataset_file
    from router_lab.train.artifacts import save_trained_router
    from router_lab.train.fit import train_router

    make_file(tmp)
    router = train_router(load_dataset_file(tmp / "datasets" / "digits.parquet"), None, None, "input", 0)
    save_trained_router(router, tmp / "train_run")


CASES = [
    {"id": "out-run-dir-is-file", "setup": "make_file", "args": ["train", "hydra.run.dir={tmp}/afile"],
     "expect": ["{tmp}/afile", "a file is in the way"]},
    {"id": "out-run-dir-under-file", "setup": "make_file",
     "args": ["simulate", "hydra.run.dir={tmp}/afile/run"],
     "expect": ["{tmp}/afile/run", "is a file"]},
    {"id": "out-run-dir-unwritable", "args": ["train", f"hydra.run.dir={UNWRITABLE}"],
     "expect": [UNWRITABLE, "expected a folder you can write to"]},
    {"id": "out-datasets-dir-is-file", "setup": "make_file",
     "args": ["dataset", "build", "synthetic", "dataset.n_rows=300", "datasets_dir={tmp}/afile"],
     "expect": ["{tmp}/afile", "a file is in the way"]},
    {"id": "out-datasets-dir-under-file", "setup": "make_file",
     "args": ["train", "datasets_dir={tmp}/afile/datasets"],
     "expect": ["{tmp}/afile/datasets", "is a file"]},
    {"id": "out-datasets-dir-unwritable",
     "args": ["dataset", "build", "synthetic", "dataset.n_rows=300", f"datasets_dir={UNWRITABLE}"],
     "expect": [UNWRITABLE]},
    {"id": "out-sweep-dir-is-file", "setup": "make_file",
     "args": ["simulate", "-m", "policy=random,always_local", "hydra.sweep.dir={tmp}/afile"],
     "expect": ["afile", "a file is in the way"]},
    {"id": "out-resume-sweep-dir-is-file", "setup": "make_file",
     "args": ["simulate", "-m", "policy=random,always_local", "+resume=true", "hydra.sweep.dir={tmp}/afile"],
     "expect": ["afile", "a file is in the way"]},
    {"id": "out-report-path-is-file", "setup": "make_file", "args": ["report", "{tmp}/afile"],
     "expect": ["{tmp}/afile", "not a folder"]},
    {"id": "out-report-path-missing", "args": ["report", "{tmp}/nosuch"], "expect": ["{tmp}/nosuch"]},
    {"id": "out-import-out-under-file", "setup": "make_file_and_csv",
     "args": ["dataset", "import", "routellm", "path={tmp}/bench.csv", "device_model=small",
              "cloud_model=big", "out={tmp}/afile/bench.parquet"],
     "expect": ["{tmp}/afile", "a file is in the way"]},
    {"id": "out-resume-root-is-file", "setup": "multirun_root_is_file",
     "args": ["simulate", "-m", "policy=random,always_local", "+resume=true"],
     "expect": ["outputs/multirun", "is a file"]},
    {"id": "out-export-out-is-file", "setup": "trained_router_and_file",
     "args": ["export", "run_dir={tmp}/train_run", "out={tmp}/afile", "export.latency_calls=50",
              "export.sklearn_latency_calls=0"],
     "expect": ["{tmp}/afile", "a file is in the way"]},
]
