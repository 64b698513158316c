"""Dask: hyper-parameter search on a dask.distributed cluster through joblib's Dask backend,
and scoring Dask collections block by block (skuad.parallel)."""

import dask.array as da
import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skuad import DeepSVDD, parallel
from skuad.metrics import make_outlier_scorer
from tests.conftest import FAST_DETECTORS, detector_id


@pytest.fixture
def client():
    # Scheduler and worker threads in this process, talking TCP over loopback as separate
    # machines would (free ports, no dashboard): nothing is exposed beyond 127.0.0.1.
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def small_search(n_jobs):
    return GridSearchCV(
        DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu"),
        {"representation_dim": [4, 8], "lr": [1e-3, 1e-2]},
        scoring=make_outlier_scorer("roc_auc", y_convention="sklearn"),
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        n_jobs=n_jobs,
    )


def test_grid_search_runs_on_a_dask_cluster_and_matches_a_local_search(client, blobs):
    X, y = blobs
    with get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        distributed_search = small_search(n_jobs=-1).fit(X, y)
    # The fits ran as tasks on the cluster's worker (joblib batches several fits per task,
    # so the number of tasks varies; with any other backend there would be none).
    assert tasks.data
    assert {task["worker"] for task in tasks.data} == set(client.scheduler_info()["workers"])
    local_search = small_search(n_jobs=1).fit(X, y)
    np.testing.assert_allclose(
        distributed_search.cv_results_["mean_test_score"],
        local_search.cv_results_["mean_test_score"],
    )
    assert distributed_search.best_params_ == local_search.best_params_
    np.testing.assert_allclose(
        distributed_search.best_estimator_.score_samples(X),
        local_search.best_estimator_.score_samples(X),
    )


# ------------------------------------------------------------------ out-of-core scoring
@pytest.mark.parametrize("detector", FAST_DETECTORS, ids=detector_id)
def test_scoring_a_dask_array_on_a_cluster_equals_in_memory_scoring(client, blobs, detector):
    X_train, _ = blobs
    fitted = clone(detector).fit(X_train)
    X = np.random.RandomState(1).normal(scale=2.0, size=(2500, X_train.shape[1]))
    # Row chunks that do not line up with the detector's own scoring batches.
    X_dask = da.from_array(X, chunks=(700, X.shape[1]))
    with get_task_stream(client) as tasks:
        computed = client.compute(
            [
                parallel.score_samples(fitted, X_dask),
                parallel.decision_function(fitted, X_dask),
                parallel.predict(fitted, X_dask),
            ],
            sync=True,
        )
    assert tasks.data  # the blocks were scored as tasks on the cluster
    scores, decision, labels = computed
    np.testing.assert_array_equal(scores, fitted.score_samples(X))
    np.testing.assert_array_equal(decision, fitted.decision_function(X))
    np.testing.assert_array_equal(labels, fitted.predict(X))
    assert scores.dtype == np.float64 and labels.dtype == np.int64


def test_scoring_a_dask_dataframe_keeps_its_index_and_checks_feature_names(client, blobs):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X_train, _ = blobs
    columns = [f"f{i}" for i in range(X_train.shape[1])]
    fitted = DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu")
    fitted.fit(pd.DataFrame(X_train, columns=columns))
    frame = pd.DataFrame(
        np.random.RandomState(2).normal(size=(300, len(columns))),
        columns=columns,
        index=np.arange(300) * 3 + 7,
    )
    scores = parallel.score_samples(fitted, dd.from_pandas(frame, npartitions=4)).compute()
    assert isinstance(scores, pd.Series)
    np.testing.assert_array_equal(scores.index, frame.index)
    np.testing.assert_array_equal(scores.to_numpy(), fitted.score_samples(frame))
    renamed = dd.from_pandas(frame.rename(columns={"f0": "other"}), npartitions=2)
    with pytest.raises(ValueError, match="feature names"):
        parallel.predict(fitted, renamed).compute()


def test_feature_chunks_are_merged_before_scoring(blobs):
    X, _ = blobs
    fitted = DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu").fit(
        X
    )
    X_dask = da.from_array(X, chunks=(64, 2))  # three chunks along the features
    np.testing.assert_array_equal(
        parallel.score_samples(fitted, X_dask).compute(scheduler="sync"), fitted.score_samples(X)
    )


def test_scoring_dask_collections_refuses_bad_input(blobs):
    X, _ = blobs
    detector = DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu")
    with pytest.raises(NotFittedError):
        parallel.score_samples(detector, da.from_array(X))
    detector.fit(X)
    with pytest.raises(ValueError, match="Dask array or a Dask DataFrame"):
        parallel.score_samples(detector, X)
    with pytest.raises(ValueError, match="4 features, but DeepSVDD was fitted with 5"):
        parallel.score_samples(detector, da.from_array(X[:, :4]))
    with pytest.raises(ValueError, match="2-D Dask array"):
        parallel.score_samples(detector, da.from_array(X[:, 0]))
    with pytest.raises(ValueError, match="has no score_samples method"):
        parallel.score_samples(object(), da.from_array(X))


def test_scores_can_be_written_to_disk_by_the_cluster(client, blobs, tmp_path):
    # Storing runs the graph through the distributed scheduler, which insists on
    # deterministic names for everything in it (fitted networks do not pickle to the same
    # bytes twice); twice, to see that each call gets a graph of its own.
    X, _ = blobs
    fitted = DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu").fit(
        X
    )
    for attempt in range(2):
        da.to_npy_stack(tmp_path / str(attempt), parallel.predict(fitted, da.from_array(X, 64)))
        np.testing.assert_array_equal(da.from_npy_stack(tmp_path / str(attempt)), fitted.predict(X))
