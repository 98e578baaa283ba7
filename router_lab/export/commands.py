"""`router-lab export` and `router-lab validate`: thin handlers over conversion and validation.

    router-lab export export.run_dir=outputs/train/<time>          # convert, validate, write
    router-lab validate outputs/export/<time>/router.onnx dataset=digits

Export validates the converted bytes before writing anything; when a gate fails it writes only
``validation.json`` (with ``passed: false``) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.data.files import load_dataset_file
from router_lab.errors import RouterLabError
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.device_graph import build_device_graph
from router_lab.export.validate import (
    ValidationReport,
    parse_model,
    session_router,
    validate_device_graph,
    validate_router,
)
from router_lab.io import atomic_write_bytes, atomic_write_json, run_dir
from router_lab.runtime.device_router import resolve_model_path
from router_lab.runtime.manifest import make_manifest, manifest_path, read_verified

ROUTER_FILE = "router.onnx"
DEVICE_GRAPH_FILE = "device_graph.onnx"
VALIDATION_FILE = "validation.json"


def router_source(cfg: DictConfig, manifest: dict[str, Any] | None = None) -> Path:
    """The trained router to export (or to compare against): export.run_dir / export.model_path."""
    given = [v for v in (cfg.export.run_dir, cfg.export.model_path,
                         OmegaConf.select(cfg, "run_dir", default=None),
                         OmegaConf.select(cfg, "model_path", default=None)) if v]
    if len(set(given)) > 1:
        raise RouterLabError(f"export.run_dir / export.model_path: got {sorted(set(given))}; expected one router")
    if given:
        return Path(to_absolute_path(str(given[0])))
    if manifest and manifest.get("source_router"):
        recorded = Path(str(manifest["source_router"]))
        if not recorded.exists():
            raise RouterLabError(f"the router this model was exported from ({recorded}, recorded in its "
                                 "manifest) is gone; pass the `router-lab train` run as export.run_dir=…")
        return recorded
    raise RouterLabError("export: which router? expected export.run_dir=outputs/train/<time> (a "
                         "'router-lab train' run folder) or export.model_path=…/router.json")


def load_router_spec(path: Path) -> RouterSpec:
    from router_lab.train.artifacts import load_trained_router

    return RouterSpec.from_trained(load_trained_router(path))


def device_model_path(dataset: Dataset) -> Path:
    """Where the digits builder keeps the device model's weights (beside the dataset file)."""
    source = Path(dataset.source)
    return source.with_name(f"{source.name.rsplit('.', 1)[0]}.device_model.json")


def validation_dataset(cfg: DictConfig, source: Path | None = None) -> Dataset:
    """The data parity is measured on: export.data=FILE (or data=FILE), else the `dataset` group
    when the command line chooses it, else the dataset the router ``source`` was trained on."""
    given = cfg.export.data or OmegaConf.select(cfg, "data", default=None)
    if given:
        return load_dataset_file(to_absolute_path(str(given)))
    if source is not None and not dataset_chosen():
        return router_dataset(source, cfg)
    return resolve_dataset(cfg.dataset, datasets_dir(cfg))


def dataset_chosen() -> bool:
    """Did the command line choose the dataset (``dataset=…`` or ``dataset.key=…``)?"""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return True  # called as a library: the config given is the choice
    keys = [str(o).lstrip("+~").split("=", 1)[0] for o in HydraConfig.get().overrides.task]
    return any(k == "dataset" or k.startswith(("dataset.", "dataset@")) for k in keys)


def router_dataset(source: Path, cfg: DictConfig) -> Dataset:
    """The dataset the router ``source`` was trained on, found by the name and sha256 its
    router.json records: the ``dataset`` section of the train run's config.yaml, else the cached
    ``datasets_dir/<name>.parquet``, else the configured default when it has that name."""
    import json

    folder = source if source.is_dir() else source.parent
    try:
        record = json.loads((folder / "router.json").read_text(encoding="utf-8"))
        name, digest = str(record["dataset_name"]), str(record["dataset_hash"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RouterLabError(f"{folder / 'router.json'}: no dataset_name/dataset_hash to find the "
                             f"router's dataset ({type(exc).__name__}); pass dataset=… or data=FILE") from None
    seen: list[str] = []
    for candidate in _dataset_candidates(folder, name, cfg):
        try:
            dataset = candidate()
        except RouterLabError as exc:
            seen.append(str(exc))
            continue
        if str(dataset.card.get("content_hash", "")) == digest:
            return dataset
        seen.append(f"{dataset.source} has another sha256")
    tried = f" (tried: {'; '.join(seen)})" if seen else ""
    raise RouterLabError(f"{folder}: cannot find the dataset the router was trained on ({name!r}, "
                         f"sha256 {digest[:12]}…){tried}; pass dataset=… or data=FILE")


def _dataset_candidates(folder: Path, name: str, cfg: DictConfig) -> list:
    config_file = folder / "config.yaml"
    candidates = []
    if config_file.is_file():
        def from_run_config() -> Dataset:
            try:
                section = OmegaConf.load(config_file).get("dataset")
            except Exception as exc:  # noqa: BLE001 - an unreadable record is not a candidate
                raise RouterLabError(f"{config_file} is unreadable ({type(exc).__name__})") from None
            if section is None:
                raise RouterLabError(f"{config_file} has no dataset section")
            return resolve_dataset(section, datasets_dir(cfg))
        candidates.append(from_run_config)
    cached = datasets_dir(cfg) / f"{name}.parquet"
    if cached.is_file():
        candidates.append(lambda: load_dataset_file(cached))
    if str(OmegaConf.select(cfg, "dataset.name", default="")) == name:
        candidates.append(lambda: resolve_dataset(cfg.dataset, datasets_dir(cfg)))
    return candidates


def output_dir(cfg: DictConfig) -> Path:
    return Path(to_absolute_path(cfg.out)) if cfg.out else run_dir()


def export(cfg: DictConfig) -> dict[str, Any]:
    """Convert the trained router (and the digits device graph), validate, write if every gate passes."""
    opts = cfg.export
    source = router_source(cfg)
    spec = load_router_spec(source)
    dataset = validation_dataset(cfg, source)
    folder = output_dir(cfg)
    files: dict[str, tuple[bytes, dict[str, Any]]] = {}
    router_bytes = convert_router(spec, opts.opset, opts.ml_opset).SerializeToString()
    report = validate_router(router_bytes, ROUTER_FILE, spec, dataset, opts)
    files[ROUTER_FILE] = (router_bytes, {"source_router": str(source)})
    graph_report = None
    weights = device_model_path(dataset)
    if opts.device_graph and spec.mode != "text" and weights.is_file():
        from router_lab.data.digits import load_device_model

        device_model = load_device_model(weights)
        graph_bytes = build_device_graph(device_model, spec, dataset.feature_columns, dataset.name,
                                         opts.opset, opts.ml_opset).SerializeToString()
        graph_report = validate_device_graph(graph_bytes, DEVICE_GRAPH_FILE, device_model, spec, dataset, opts)
        files[DEVICE_GRAPH_FILE] = (graph_bytes, {"source_router": str(source), "device_model": str(weights)})
    summary = validation_json(report, graph_report, source, dataset)
    atomic_write_json(folder / VALIDATION_FILE, summary)
    print(format_summary(report, graph_report, folder))
    if not summary["passed"]:
        failed = report.failed + [f"device_graph.{g}" for g in (graph_report.failed if graph_report else [])]
        raise RouterLabError(f"export: validation failed ({', '.join(failed)}); no model written; "
                             f"see {folder / VALIDATION_FILE}")
    for name, (data, extra) in files.items():
        kind = "device_graph" if name == DEVICE_GRAPH_FILE else "router"
        write_model(folder / name, data, kind, validation=VALIDATION_FILE, **extra)
    print(f"wrote {', '.join(files)} (+ manifests, {VALIDATION_FILE}) to {folder}")
    return summary


def write_model(path: Path, data: bytes, kind: str, **extra: Any) -> Path:
    """Write a model and then its manifest (a model without a manifest is never loaded)."""
    atomic_write_bytes(path, data)
    atomic_write_json(manifest_path(path), make_manifest(data, path.name, kind, **extra))
    return path


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Validate an exported model (verified against its manifest) on the configured dataset."""
    if not cfg.path:
        raise RouterLabError("validate: missing PATH; expected 'router-lab validate path/to/router.onnx'")
    model_path = resolve_model_path(to_absolute_path(cfg.path))
    data, manifest = read_verified(model_path)
    parse_model(data, str(model_path))  # a damaged or foreign file fails here, before the data loads
    session_router(data, str(model_path), int(cfg.export.threads))
    source = router_source(cfg, manifest)
    spec = load_router_spec(source)
    dataset = validation_dataset(cfg, source)
    opts = cfg.export
    report, graph_report = None, None
    if manifest.get("kind") == "device_graph":
        from router_lab.data.digits import load_device_model

        weights = manifest.get("device_model") or str(device_model_path(dataset))
        graph_report = validate_device_graph(data, str(model_path), load_device_model(weights), spec,
                                             dataset, opts)
    else:
        report = validate_router(data, str(model_path), spec, dataset, opts)
    main = report or graph_report
    summary = validation_json(main, None, source, dataset)
    folder = output_dir(cfg)
    atomic_write_json(folder / VALIDATION_FILE, summary)
    print(format_summary(report, graph_report, folder))
    if not summary["passed"]:
        raise RouterLabError(f"validate: {model_path} failed ({', '.join(main.failed)}); see {folder / VALIDATION_FILE}")
    return summary


def validation_json(report: ValidationReport, graph: ValidationReport | None, source: Path,
                    dataset: Dataset) -> dict[str, Any]:
    """validation.json: the router's figures and gates at the top level, the device graph's nested."""
    out = {**report.to_dict(), "router_source": str(source),
           "dataset_hash": str(dataset.card.get("content_hash", ""))}
    if graph is not None:
        out["device_graph"] = graph.to_dict()
        out["passed"] = report.passed and graph.passed
    return out


def format_summary(report: ValidationReport | None, graph: ValidationReport | None, folder: Path) -> str:
    lines = [f"{'model':<14}{'bytes':>10}{'max|diff|':>11}{'agree':>9}{'ties':>6}"
             f"{'onnx p50 µs':>13}{'p99 µs':>9}{'sklearn p50 µs':>16}{'  passed'}"]
    for rep in (report, graph):
        if rep is None:
            continue
        f = rep.figures
        lines.append(f"{f['kind']:<14}{f['model_bytes']:>10,}{f['max_abs_diff']:>11.2e}"
                     f"{f['decision_agreement']:>9.4f}{f['n_tie_band']:>6}{f.get('onnx_p50_us', float('nan')):>13.1f}"
                     f"{f.get('onnx_p99_us', float('nan')):>9.1f}{f.get('sklearn_p50_us', float('nan')):>16.1f}"
                     f"  {'yes' if rep.passed else 'NO: ' + ', '.join(rep.failed)}")
    lines.append(f"validation report: {folder / VALIDATION_FILE}")
    return "\n".join(lines)
