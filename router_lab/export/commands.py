"""`router-lab export` and `router-lab validate`: thin handlers over conversion and validation.

    router-lab export export.run_dir=outputs/train/<time>          # convert, validate, write
    router-lab validate outputs/export/<time>/router.onnx dataset=digits

Export validates the converted bytes before writing anything; when a gate fails it writes only
``validation.json`` (with ``passed: false``) and exits with status 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from router_lab.constants import CONFIG_FILE, ROUTER_META_FILE
from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.data.files import load_dataset_file
from router_lab.errors import RouterLabError
from router_lab.export.bundle import (
    configured_policy_for_export,
    json_bytes,
    needs_router,
    policy_document,
    refuse_upper_bounds,
    write_bundle,
)
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
from router_lab.report import steps
from router_lab.runtime.bundle import MANIFEST_FILE, POLICY_FILE
from router_lab.runtime.device_router import DEFAULT_FILE, resolve_model_path
from router_lab.runtime.manifest import (
    check_kind,
    make_manifest,
    manifest_path,
    read_verified,
    sign_manifest,
)
from router_lab.runtime.spec import policy_models, policy_threshold, score_source

ROUTER_FILE = DEFAULT_FILE  # the router model in an export folder (the runtime loads it by this name)
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
        record = json.loads((folder / ROUTER_META_FILE).read_text(encoding="utf-8"))
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
    config_file = folder / CONFIG_FILE
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


@steps.reported("export")
def export(cfg: DictConfig) -> dict[str, Any]:
    """Write the routing bundle of the configured policy: the policy's models (converted and
    validated; written only if every gate passes), policy.json and the bundle manifest."""
    opts = cfg.export
    from router_lab.export.targets import check_target_names

    check_target_names(opts.targets)  # a bad target name fails before anything is converted
    sign_key = signing_key(cfg)
    policy_cfg = cfg.policy
    refuse_upper_bounds(policy_cfg)
    has_router = bool(_given_router(cfg))
    if not has_router and needs_router(policy_cfg):
        raise RouterLabError(f"export: policy {policy_cfg.name} scores with a trained router; expected "
                             "export.run_dir=outputs/train/<time> (a 'router-lab train' run folder)")
    steps.step("load the trained router and the validation dataset")
    source = router_source(cfg) if has_router else None
    trained = load_trained(source) if source is not None else None
    check_router_kind(policy_cfg, trained, source)
    dataset = validation_dataset(cfg, source)
    policy = configured_policy_for_export(cfg, dataset, trained)
    node = policy.node()  # refuses the oracle (it needs the answers) in one line
    folder = output_dir(cfg)
    if policy_models(node):  # an N-model policy: its per-model quality heads as one graph
        return export_tiered(policy, node, cfg, dataset, folder, sign_key, source)
    uses_router = score_source(node) == "router"
    files: dict[str, tuple[bytes, str]] = {}
    summary: dict[str, Any] = {"passed": True, "policy": node["kind"]}
    spec = None
    if uses_router:
        spec = replace(RouterSpec.from_trained(trained), threshold=shipped_threshold(node, trained))
        summary = convert_and_validate(spec, source, dataset, opts, folder, files, sign_key)
    document = policy_document(node, ROUTER_FILE if uses_router else None, spec, cfg, source, dataset)
    files[POLICY_FILE] = (json_bytes(document), "policy")
    steps.step("write the bundle")
    write_bundle(folder, files, sign_key)
    print(f"wrote the {node['kind']} bundle ({', '.join(sorted(files))}, {MANIFEST_FILE}) to {folder}")
    return summary


def export_tiered(policy: Any, node: dict[str, Any], cfg: DictConfig, dataset: Dataset, folder: Path,
                  sign_key: Path | None, source: Path | None = None) -> dict[str, Any]:
    """The bundle of an N-model policy (cost_aware, tier_cascade): its quality heads converted into
    one graph (``router_lab.export.quality_graph``), validated against scikit-learn on the held-out
    rows (the test split, else every row), policy.json and the manifests.  ``source``: the train run
    of the heads (None: the policy fitted them)."""
    import numpy as np

    from router_lab.export.quality_graph import convert_quality_router, validate_quality_graph
    from router_lab.features import router_inputs

    router = policy.router
    steps.step(f"convert the {len(router.models)} quality heads to one ONNX graph (opset {cfg.export.opset})")
    data = convert_quality_router(router, dataset.name, str(dataset.card.get("content_hash", "")),
                                  int(cfg.export.opset), int(cfg.export.ml_opset)).SerializeToString()
    steps.step("validate the graph (checker, runtime load, parity of the qualities with scikit-learn)")
    X, _ = router_inputs(dataset, router.mode)
    held = dataset.split_mask("test") if "split" in dataset.frame.columns else np.ones(len(dataset), dtype=bool)
    report = validate_quality_graph(data, ROUTER_FILE, router, X[held if held.any() else slice(None)],
                                    int(cfg.export.latency_calls))
    atomic_write_json(folder / VALIDATION_FILE, report)
    print(f"quality graph: {report['model_bytes']:,} bytes, {len(router.models)} heads, max|diff| "
          f"{report['max_abs_diff']:.2e} on {report['n_rows']:,} held-out rows, p50 {report['onnx_p50_us']:.1f} µs")
    manifest = make_manifest(data, ROUTER_FILE, "router", validation=VALIDATION_FILE,
                             source_router=str(source) if source is not None else "(trained by the policy)",
                             threshold=0.0)
    if sign_key is not None:
        manifest = sign_manifest(manifest, sign_key)
    spec = RouterSpec(estimator=router.heads[0], estimator_name=router.estimator_name,
                      feature_columns=router.feature_columns, mode=router.mode, threshold=0.0,
                      target={"kind": "per_model_quality"}, dataset_name=dataset.name,
                      dataset_hash=str(dataset.card.get("content_hash", "")))
    document = policy_document(node, ROUTER_FILE, spec, cfg, source, dataset)
    files = {ROUTER_FILE: (data, "router"), manifest_path(folder / ROUTER_FILE).name: (json_bytes(manifest), "model_manifest"),
             POLICY_FILE: (json_bytes(document), "policy")}
    steps.step("write the bundle")
    write_bundle(folder, files, sign_key)
    print(f"wrote the {node['kind']} bundle ({', '.join(sorted(files))}, {MANIFEST_FILE}) to {folder}")
    return {**report, "policy": node["kind"]}


def _given_router(cfg: DictConfig) -> list[Any]:
    return [v for v in (cfg.export.run_dir, cfg.export.model_path, OmegaConf.select(cfg, "run_dir", default=None),
                        OmegaConf.select(cfg, "model_path", default=None)) if v]


def load_trained(source: Path) -> Any:
    """The router of a train run: two-model, or per-model quality heads (``train.per_model=true``)."""
    from router_lab.train.artifacts import load_trained_router
    from router_lab.train.quality_files import is_quality_router, load_quality_router

    return load_quality_router(source) if is_quality_router(source) else load_trained_router(source)


def check_router_kind(policy_cfg: Any, trained: Any, source: Path | None) -> None:
    """An N-model policy takes per-model quality heads, every other policy a two-model router."""
    from router_lab.sim.commands import n_model_policy
    from router_lab.train.quality import QualityRouter

    if trained is None or n_model_policy(policy_cfg) == isinstance(trained, QualityRouter):
        return
    if isinstance(trained, QualityRouter):
        raise RouterLabError(f"{source}: per-model quality heads; policy {policy_cfg.name} needs a two-model "
                             "router (a 'router-lab train' run without train.per_model)")
    raise RouterLabError(f"{source}: a two-model router; policy {policy_cfg.name} needs per-model quality "
                         "heads (a 'router-lab train train.per_model=true' run)")


def shipped_threshold(node: dict[str, Any], trained: Any) -> float:
    """The threshold compiled into the graph: the policy's own (it may be a swept value), or the
    router's trained one for policies whose threshold moves (budget)."""
    fixed = policy_threshold(node)
    return float(trained.threshold if fixed is None else fixed)


def convert_and_validate(spec: RouterSpec, source: Path, dataset: Dataset, opts: Any, folder: Path,
                         files: dict[str, tuple[bytes, str]], sign_key: Path | None = None) -> dict[str, Any]:
    """Convert the router (and the digits device graph), validate the bytes in memory, write
    validation.json; add the models and their manifests to ``files`` only if every gate passes."""
    steps.step(f"convert the router to ONNX (opset {opts.opset})")
    router_bytes = convert_router(spec, opts.opset, opts.ml_opset).SerializeToString()
    steps.step("validate the router (gates: checker, shape inference, max abs diff, decision agreement, size, p99 latency)")
    report = validate_router(router_bytes, ROUTER_FILE, spec, dataset, opts)
    models: dict[str, tuple[bytes, dict[str, Any]]] = {
        ROUTER_FILE: (router_bytes, {"source_router": str(source), "threshold": spec.threshold})}
    target_reports, target_files = _targets(opts, router_bytes, report, spec, dataset)
    graph_report = None
    weights = device_model_path(dataset)
    if opts.device_graph and not spec.mode.startswith("text") and weights.is_file():
        from router_lab.data.digits import load_device_model

        device_model = load_device_model(weights)
        steps.step("build and validate the device graph")
        graph_bytes = build_device_graph(device_model, spec, dataset.feature_columns, dataset.name,
                                         opts.opset, opts.ml_opset).SerializeToString()
        graph_report = validate_device_graph(graph_bytes, DEVICE_GRAPH_FILE, device_model, spec, dataset, opts)
        models[DEVICE_GRAPH_FILE] = (graph_bytes, {"source_router": str(source), "device_model": str(weights),
                                                   "threshold": spec.threshold})
    summary = validation_json(report, graph_report, source, dataset)
    if target_reports:
        summary["targets"] = target_reports
        summary["router_estimator"] = spec.estimator_name
        summary["passed"] = summary["passed"] and target_reports.get("onnx", {"passed": True})["passed"]
    atomic_write_json(folder / VALIDATION_FILE, summary)
    print(format_summary(report, graph_report, folder))
    if target_reports:
        from router_lab.export.targets import format_targets

        print(format_targets(target_reports))
    if not summary["passed"]:
        failed = report.failed + [f"device_graph.{g}" for g in (graph_report.failed if graph_report else [])]
        failed += [] if target_reports.get("onnx", {"passed": True})["passed"] else ["targets.onnx"]
        raise RouterLabError(f"export: validation failed ({', '.join(failed)}); no model written; "
                             f"see {folder / VALIDATION_FILE}")
    for name, (data, extra) in models.items():
        kind = "device_graph" if name == DEVICE_GRAPH_FILE else "router"
        manifest = make_manifest(data, name, kind, validation=VALIDATION_FILE, **extra)
        if sign_key is not None:
            manifest = sign_manifest(manifest, sign_key)
        files[name] = (data, kind)
        files[manifest_path(folder / name).name] = (json_bytes(manifest), "model_manifest")
    for item in target_files:  # the files of the targets that passed (ORT format, int8, configs)
        files[item.name] = (item.data, "target")
        if item.is_model:
            manifest = make_manifest(item.data, item.name, "router", validation=VALIDATION_FILE, role=item.role,
                                     source_router=str(source), threshold=spec.threshold)
            if sign_key is not None:
                manifest = sign_manifest(manifest, sign_key)
            files[manifest_path(folder / item.name).name] = (json_bytes(manifest), "model_manifest")
    return summary


def _targets(opts: Any, router_bytes: bytes, report: ValidationReport, spec: RouterSpec,
             dataset: Dataset) -> tuple[dict[str, Any], list[Any]]:
    """export.targets: each target's report and the files of those that passed (none when the float
    router itself failed its gates: nothing is converted from a model that is not written)."""
    from router_lab.export.targets import check_target_names, run_targets, target_input

    names = check_target_names(opts.targets)
    if not report.passed:
        return {}, []
    return run_targets(names, target_input(router_bytes, spec, dataset, opts))


def signing_key(cfg: DictConfig) -> Path | None:
    """``sign_key=PATH``: the Ed25519 private key that signs the manifests (checked before any
    work, so a bad key writes nothing)."""
    given = OmegaConf.select(cfg, "sign_key", default=None)
    if not given:
        return None
    from router_lab.runtime.signing import load_private_key

    path = Path(to_absolute_path(str(given)))
    load_private_key(path)
    return path


def write_model(path: Path, data: bytes, kind: str, sign_key: Path | None = None, **extra: Any) -> Path:
    """Write a model and then its manifest (a model without a manifest is never loaded); with
    ``sign_key`` the manifest carries an Ed25519 signature (``router_lab.runtime.signing``)."""
    manifest = make_manifest(data, path.name, kind, **extra)
    if sign_key is not None:
        manifest = sign_manifest(manifest, sign_key)
    atomic_write_bytes(path, data)
    atomic_write_json(manifest_path(path), manifest)
    return path


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Validate an exported model (verified against its manifest) on the configured dataset."""
    if not cfg.path:
        raise RouterLabError("validate: missing PATH; expected 'router-lab validate path/to/router.onnx'")
    model_path = resolve_model_path(to_absolute_path(cfg.path))
    data, manifest = read_verified(model_path)
    parse_model(data, str(model_path))  # a damaged or foreign file fails here, before the data loads
    loaded = session_router(data, str(model_path), int(cfg.export.threads))
    check_kind(manifest, loaded.metadata["kind"], model_path)
    loaded.check_compiled_threshold()
    source = router_source(cfg, manifest)
    spec = load_router_spec(source)
    if isinstance(manifest.get("threshold"), float):  # a bundle's policy may ship its own threshold
        spec = replace(spec, threshold=manifest["threshold"])
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
