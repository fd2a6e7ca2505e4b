"""The CPU paper smoke (ebm_bench/bench/paper_smoke.py, issue 20): its config derived from
config/paper.yaml (every row, network sizes untouched, loops shrunk), its per-row record,
and the pieces it added (gpu_check.shrink_loops, the idx writer, the probe's feature
subset, the classifier's epochs). The smoke itself is a benchmark
(`ebm-bench bench paper_smoke`), not a test."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_bench.bench import paper_smoke as ps
from ebm_bench.pipeline.config import check_config, run_spec
from ebm_bench.bench.gpu_check import BURN_IN_KNOBS, FLOAT_KNOBS, KNOBS, NESTED_KNOBS, data_info, shrink_loops

# keys a row's loop shortening may change besides the knobs (kept consistent with them)
CONSISTENCY_KEYS = {"neg_burn_in", "learn_after"}


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    paper = ps.load_paper_config()
    smoke = ps.smoke_config(paper, tmp / "data", tmp / "results")
    return paper, smoke


def test_smoke_config_keeps_every_row_and_every_network_size(configs):
    """Every (dataset, variant) row of paper.yaml is in the smoke; each row's resolved
    parameters differ from the paper's only in loop-length knobs, each cut to at most
    LOOP_STEPS steps (burn-in BURN_IN_STEPS), and, where the batch exceeds BATCH_CAP, in
    its chain populations, scaled with the batch (every ratio kept); training is STEPS
    updates; the data keep their shape; the config passes the package's checks."""
    paper, smoke = configs
    assert ps.rows(smoke) == ps.rows(paper) and len(ps.rows(paper)) >= 40
    check_config(smoke)
    shrunk_any = set()
    for d, v in ps.rows(paper):
        a, b = run_spec(paper, d, v, 0), run_spec(smoke, d, v, 0)
        assert a["method"] == b["method"]
        knobs = set(KNOBS.get(a["method"], ())) | set(NESTED_KNOBS.get(a["method"], ())) | set(BURN_IN_KNOBS)
        pa, pb = a["method_params"], b["method_params"]
        assert set(pa) == set(pb), (d, v)
        changed = {k for k in pa if pa[k] != pb[k]}
        batch_a, batch_b = a["train"]["batch_size"], b["train"]["batch_size"]
        scaled = set(ps.POPULATION_KEYS) if batch_a > ps.BATCH_CAP else set()
        assert changed <= knobs | CONSISTENCY_KEYS | scaled, (d, v, changed - knobs)
        for k in changed & knobs:
            n = ps.BURN_IN_STEPS if k in BURN_IN_KNOBS else ps.LOOP_STEPS
            limit = n * float(pa.get("dt", 1.0)) if k in FLOAT_KNOBS else n
            assert 0 < pb[k] <= limit + 1e-12 and pb[k] < pa[k], (d, v, k, pa[k], pb[k])
        assert batch_b == min(batch_a, ps.BATCH_CAP)
        for k in changed & scaled:  # populations shrink with the batch: ratios kept
            assert pb[k] * batch_a == pa[k] * batch_b, (d, v, k, pa[k], pb[k])
        shrunk_any |= changed
        for k in ("net", "net_params", "n_hidden", "layers", "connectivity", "data_bank_size", "step_size",
                  "temperature"):
            assert pa.get(k) == pb.get(k), (d, v, k)  # network sizes (and the sampler's steps) untouched
        assert b["train"]["steps"] == ps.STEPS
        assert b["sample"]["n"] == ps.SAMPLE_N and b["device"] == "cpu" and b["seed"] == 0
        assert tuple(data_info(smoke, d).shape) == tuple(data_info(paper, d).shape), d
    # the long loops of the paper are among those cut
    assert {"n_steps", "langevin_steps", "gibbs_steps", "present_time", "burn_in_steps", "n_walkers"} <= shrunk_any
    j = run_spec(smoke, "cifar10", "jarzynski_systematic", 0)["method_params"]
    assert (j["n_walkers"], j["n_moved"]) == (512, 32)  # paper: 4096, 256 at batch 512; here batch 64
    assert smoke["evaluate"]["features"] == "domain" and smoke["classifier"]["epochs"] == ps.CLASSIFIER_EPOCHS
    assert smoke["datasets"]["cifar10"]["type"] == "image_folder"
    assert smoke["datasets"]["mnist"]["type"] == "mnist"  # read from torchvision's raw files
    assert all(not (dc or {}).get("seeds") for dc in smoke["datasets"].values())
    # the paper config itself is untouched (anchored mappings are shared between rows)
    assert ps.load_paper_config() == paper


def test_smoke_config_uses_inception_when_weights_are_given(configs, tmp_path):
    paper, _ = configs
    cfg = ps.smoke_config(paper, tmp_path / "data", tmp_path / "results", inception_weights="/w/inception.pth")
    assert cfg["evaluate"]["features"] == "auto" and cfg["evaluate"]["inception_weights"] == "/w/inception.pth"


def test_written_config_reads_back_equal(configs, tmp_path):
    import yaml

    _, smoke = configs
    ps.write_config(smoke, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "*id" not in text and "&id" not in text  # every mapping written out in full
    assert yaml.safe_load(text) == smoke


def test_shrink_loops_cuts_each_knob_on_its_own():
    """Integer knobs to min(value, steps), zero knobs stay 0 ("off"), HEE times to at most
    `steps` Euler steps with every average within its total; nothing else changes."""
    p = {"n_steps": 60, "sample_steps": 0, "burn_in_steps": 8000, "step_size": 1.0, "n_walkers": 4096}
    q = shrink_loops(p, "jarzynski", 2, burn_in=1)
    assert q == {**p, "n_steps": 2, "burn_in_steps": 1}
    # NN-EFH: both loops of the M x L Gibbs-Langevin sampler
    assert shrink_loops({"gibbs_steps": 5, "langevin_steps": 60}, "nnefh", 2) == {"gibbs_steps": 2,
                                                                                 "langevin_steps": 2}
    assert shrink_loops({"n_steps": 1, "sample_steps": 100}, "stanley", 2) == {"n_steps": 1, "sample_steps": 2}
    g = shrink_loops({"gibbs_steps": 100, "sample_gibbs_steps": 99, "neg_burn_in": 50}, "grbm", 2)
    assert g == {"gibbs_steps": 2, "sample_gibbs_steps": 2, "neg_burn_in": 1}
    h = {"dt": 0.01, "present_time": 300.0, "learn_after": 10.0, "joint_time": 300.0, "joint_average": 100.0,
         "marginal_time": 100.0, "marginal_average": 0.005, "feature_time": 20.0, "feature_average": 10.0}
    r = shrink_loops(h, "hee", 2)
    assert r["present_time"] == pytest.approx(0.02) and r["learn_after"] <= 0.5 * r["present_time"]
    assert r["marginal_average"] == 0.005  # already shorter: kept
    for avg, tot in (("joint_average", "joint_time"), ("marginal_average", "marginal_time"),
                     ("feature_average", "feature_time")):
        assert 0 < r[avg] <= r[tot] <= 0.02 + 1e-12
    assert shrink_loops({"n_steps": 5}, "no_such_method", 2) == {"n_steps": 5}


def _status(run: Path, **extra) -> None:
    run.mkdir(parents=True, exist_ok=True)
    doc = {"status": "ok", "diverged_step": None, "steps": 2, "time_per_update_ms": 1500.0, "n_params": 1234,
           "peak_rss_mb": 900.0, "wall_time_s": 3.0, **extra}
    (run / "train_status.json").write_text(json.dumps(doc))


def _bench(results: Path, stage: str, d: str, v: str, rss: str, s: str = "4.0") -> None:
    p = results / "benchmarks" / stage / d / v / "seed0.tsv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("s\th:m:s\tmax_rss\tmax_vms\tcpu_time\n" f"{s}\t0:00:04\t{rss}\t10\t2.5\n")


def test_row_record_format(tmp_path):
    """ok / s_per_update / peak_mem_mb / error of a row from its run files: a good row, a
    row whose metric family failed, a row whose training job failed (its log's error
    line), and a row that never ran because its dataset's classifier job failed."""
    res = tmp_path / "results"
    run = res / "runs" / "mnist" / "pcd" / "seed0"
    _status(run)
    (run / "samples.npz").write_bytes(b"x")
    (run / "metrics").mkdir()
    fid = {"status": "ok", "protocol": {"feature_kind": "domain", "extractor": {"name": "ebm-bench-domain"}}}
    (run / "metrics" / "fid.json").write_text(json.dumps(fid))
    (run / "metrics" / "cost.json").write_text(json.dumps({"status": "ok"}))
    _bench(res, "train", "mnist", "pcd", "1200.5")
    _bench(res, "sample", "mnist", "pcd", "NA")
    _bench(res, "evaluate", "mnist", "pcd", "800")
    rec = ps.row_record(res, "mnist", "pcd")
    assert {"dataset", "variant", "ok", "s_per_update", "peak_mem_mb", "error"} <= set(rec)
    assert rec["ok"] is True and rec["error"] is None
    assert rec["s_per_update"] == pytest.approx(1.5) and rec["peak_mem_mb"] == pytest.approx(1200.5)
    assert rec["extractor"] == "ebm-bench-domain" and rec["n_params"] == 1234
    assert rec["jobs_wall_s"] == pytest.approx(12.0) and rec["jobs_cpu_s"] == pytest.approx(7.5)
    assert ps.cpu_seconds(res) == pytest.approx(7.5)
    json.dumps(rec)  # JSON-serialisable

    (run / "metrics" / "probe.json").write_text(json.dumps({"status": "error", "error": "ValueError: boom"}))
    bad = ps.row_record(res, "mnist", "pcd")
    assert bad["ok"] is False and "probe" in bad["error"] and "boom" in bad["error"]

    log = res / "logs" / "train" / "mnist" / "nnefh" / "seed0.log"
    log.parent.mkdir(parents=True)
    log.write_text("[mnist/nnefh/seed0] step 1/2\nTraceback (most recent call last):\n  ...\n"
                   "RuntimeError: shapes do not match\n")
    failed = ps.row_record(res, "mnist", "nnefh")
    assert failed["ok"] is False and failed["s_per_update"] is None
    assert failed["error"] == "train: RuntimeError: shapes do not match"

    clog = res / "logs" / "classifier" / "cifar10.log"
    clog.parent.mkdir(parents=True)
    clog.write_text("ebm-bench classifier: error: dataset 'image_folder' not found\n")
    upstream = ps.row_record(res, "cifar10", "pcd")
    assert upstream["ok"] is False and upstream["error"].startswith("classifier job of cifar10: ")

    text = ps.table([rec, failed])
    assert "| mnist | pcd | yes | 1.50 | 1200 |" in text and "| mnist | nnefh | NO |" in text


def test_prepare_data_requires_the_raw_files_and_generates_image_folders(tmp_path, monkeypatch):
    """MNIST-format datasets only from torchvision's raw files (one error naming what is
    missing, before anything runs); checksummed datasets from a generated image folder
    that the image_folder loader reads at the row's shape."""
    from ebm_bench.data import load_dataset
    from ebm_bench.data.idx import write_idx
    from ebm_bench.core.errors import ConfigError

    paper = {"datasets": {"mnist": {"type": "mnist", "params": {"size": 32}},
                          "flowers102": {"type": "flowers102", "params": {"size": 32}}}, "variants": {"pcd": {}}}
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(ConfigError, match=r"mnist: dataset 'mnist' not found"):
        ps.prepare_data(paper, src, tmp_path / "d1", say=lambda m: None)
    raw = src / "MNIST" / "raw"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    said = []
    monkeypatch.setitem(ps.FOLDER_SHAPES, "flowers102", (3, 4, 2))  # small for the test
    where = ps.prepare_data(paper, src, tmp_path / "d2", say=said.append)
    assert "synthetic" in where["flowers102"] and "SYNTHETIC" in said[0]
    assert where["mnist"].startswith("torchvision raw files")
    m = load_dataset("mnist", {"size": 32}, tmp_path / "d2")
    assert tuple(m.x_train.shape) == (30, 1, 32, 32) and m.y_test.tolist() == list(range(10))
    f = load_dataset("image_folder", {"path": "flowers102/image_folder", "size": 32, "channels": 3}, tmp_path / "d2")
    assert tuple(f.x_train.shape) == (12, 3, 32, 32) and tuple(f.x_test.shape) == (6, 3, 32, 32)
    assert f.num_classes == 3


def test_idx_writer_is_read_by_torchvision(tmp_path):
    from torchvision.datasets import MNIST

    from ebm_bench.data.idx import write_raw

    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), "y_train": np.arange(7, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), "y_test": np.arange(3, dtype=np.uint8)}
    np.savez(tmp_path / "a.npz", **arrays)
    write_raw(tmp_path / "a.npz", "mnist", tmp_path / "root")
    ds = MNIST(str(tmp_path / "root"), train=True, download=False)
    assert np.array_equal(ds.data.numpy(), arrays["x_train"]) and ds.targets.tolist() == list(range(7))
    with pytest.raises(ValueError, match="x_test"):
        np.savez(tmp_path / "b.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
        write_raw(tmp_path / "b.npz", "mnist", tmp_path / "root2")


def test_probe_computes_features_of_the_fitted_rows_only(monkeypatch):
    """The probe family passes only the max_train rows linear_probe fits on through the
    network (probe_subset: the same rows from the same seed), and scores exactly what
    the fit on every row's features scores."""
    from types import SimpleNamespace

    from ebm_bench.evaluation import probe as fam
    from ebm_bench.metrics.probe import linear_probe

    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 6, generator=g)
    seen = []

    class Linear:
        device = torch.device("cpu")
        probe_untrained_control = False

        def features(self, x):
            seen.append(len(x))
            return {"h": torch.tanh(x.flatten(1) @ w)}

    y = torch.arange(300) % 3
    x = torch.randn(300, 1, 4, 4, generator=g) + y[:, None, None, None].float()
    data = SimpleNamespace(x_train=x[:250], y_train=y[:250], x_test=x[250:], y_test=y[250:])
    ctx = SimpleNamespace(data=data, method=Linear(), ev={"probe_max_train": 100}, ok=True, spec={},
                          log=lambda m: None)
    metrics, _ = fam.probe(ctx)
    assert max(seen) <= 100  # never the 250 training rows
    full = linear_probe(Linear().features(data.x_train)["h"].numpy(), data.y_train.numpy(),
                        Linear().features(data.x_test)["h"].numpy(), data.y_test.numpy(), seed=0, max_train=100)
    assert metrics["probe_acc_h"] == full["accuracy"]


def test_classifier_stage_takes_the_configs_epochs(tmp_path, monkeypatch):
    import inspect

    from ebm_bench.nets.domain_classifier import load_classifier
    from ebm_bench.training import classifier as extractors
    from ebm_bench.pipeline.stages import classifier_stage

    spec = {"dataset": {"name": "digits", "type": "digits", "params": {}}, "data_root": str(tmp_path),
            "device": "cpu", "classifier": {"epochs": 1}}
    classifier_stage(spec, tmp_path / "c.pt")
    assert load_classifier(tmp_path / "c.pt").info["epochs"] == 1
    # without the section: the trainer's own default (20), i.e. no epochs argument at all
    seen = {}
    real = extractors.train_domain_classifier
    monkeypatch.setattr(extractors, "train_domain_classifier",
                        lambda *a, **k: (seen.update(k), real(*a, **{**k, "epochs": 0}))[1])
    spec.pop("classifier")
    classifier_stage(spec, tmp_path / "d.pt")
    assert "epochs" not in seen and inspect.signature(real).parameters["epochs"].default == 20


def test_bench_paper_smoke_needs_its_folders_and_runs_only_when_named(tmp_path, capsys):
    """`ebm-bench bench paper_smoke` without --data-root / --out: one error line, exit 2,
    before any compute; a bad --data-root likewise; `ebm-bench bench` alone skips it."""
    from ebm_bench.bench import suite as bench
    from ebm_bench.cli import main

    assert "paper_smoke" in bench.BENCHMARKS and "paper_smoke" in bench.EXPLICIT_ONLY
    assert main(["bench", "paper_smoke", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-root" in err[0]
    assert main(["bench", "paper_smoke", "--out", str(tmp_path / "o"), "--data-root", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
