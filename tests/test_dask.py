"""Hyper-parameter search on a dask.distributed cluster through joblib's Dask backend."""

import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skuad import DeepSVDD
from skuad.metrics import make_outlier_scorer


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
        DeepSVDD(epochs=2, pretrain_epochs=1, random_state=0, device="cpu"),
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
