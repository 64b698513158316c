"""Beyond one process: data-parallel training through Accelerate, scoring Dask collections.

* :func:`data_parallel` trains every network of the detectors fitted inside it on several
  processes (GPUs, or CPU processes), through skorch's Hugging Face Accelerate integration
  (:class:`skorch.hf.AccelerateMixin`). The fitted detector is an ordinary one: it pickles
  and scores in a single process.
* :func:`score_samples`, :func:`decision_function` and :func:`predict` score a Dask array or
  Dask DataFrame with a fitted detector block by block, so data larger than memory (or spread
  over a cluster) can be scored; each block is scored by the detector's own method.

Accelerate and Dask are optional: they are imported only when these functions run
(``pip install "skuad[distributed]"``).
"""

import contextlib
import functools
import uuid

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from skuad._docstrings import fill_doc

__all__ = ["data_parallel", "score_samples", "decision_function", "predict"]


# ---------------------------------------------------------------------- training: Accelerate
@contextlib.contextmanager
def data_parallel(accelerator=None):
    """Train the detectors fitted in this block data-parallel, through Hugging Face Accelerate.

    Start the script on several processes (``accelerate launch --multi_gpu --num_processes N
    script.py``, or ``torchrun --nproc_per_node N script.py``); every process runs the same
    code and fits the same detector on the same rows. Inside the block, each training stage of
    each ``fit`` shards every mini-batch over the processes and averages the gradients
    (PyTorch's ``DistributedDataParallel``), so all processes end with the same weights.
    Scaling, the detector's own statistics (centres, thresholds, ``offset_``) and scoring run
    on every process on all rows, as in a single-process fit. The fitted detector is a plain
    one: it pickles, and scores in any single process, with or without a GPU.

    With the default accelerator (``split_batches=True``), ``batch_size`` is the global batch:
    each of the ``N`` processes takes ``batch_size / N`` of its rows (``batch_size`` must be a
    multiple of ``N``), so a step sees the same rows as a single-process step, and the fit
    equals a single-process fit up to floating-point summation order. The last batch of an
    epoch that does not divide evenly is filled up with rows from the start of the epoch
    (Accelerate's ``even_batches``). The training and validation losses in each net's history
    are averaged over the processes, so that early stopping and the divergence check decide
    the same on all of them.

    Networks with BatchNorm layers (convolutional networks for images, ResAD's constraintor)
    normalise each process's share of a batch on its own, which differs from a
    single-process fit; their running statistics are taken from the main process at the end
    of training. Random draws inside a network (dropout, as in CLAD's denoising autoencoder)
    differ from those of a single-process fit: each process draws its own. With
    ``early_stopping``, the validation loss is the mean over the processes'
    shares of the validation rows (Accelerate fills the last share up with repeated rows), so
    training can stop at another epoch than in a single-process fit.

    Parameters
    ----------
    accelerator : accelerate.Accelerator, default=None
        The accelerator to train with; ``None`` creates
        ``Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))``. Pass
        your own for mixed precision or gradient accumulation. Its ``device`` replaces the
        detectors' ``device`` parameter during training. After each training stage,
        ``accelerator.free_memory()`` releases what it prepared, as Accelerate asks between
        trainings of different models.

    Yields
    ------
    accelerator : accelerate.Accelerator
        The accelerator in use (``accelerator.is_main_process`` tells which process should
        save the fitted detector).

    Examples
    --------
    Run as ``accelerate launch --multi_gpu --num_processes 4 train.py``::

        import joblib
        from skuad import DeepSVDD
        from skuad.parallel import data_parallel

        with data_parallel() as accelerator:
            detector = DeepSVDD(batch_size=256, random_state=0).fit(X)
        if accelerator.is_main_process:
            joblib.dump(detector, "detector.joblib")
    """
    try:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "data_parallel needs Hugging Face Accelerate: pip install 'skuad[distributed]'."
        ) from exc
    if accelerator is None:
        accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))
    elif not isinstance(accelerator, Accelerator):
        raise ValueError(
            "accelerator must be an accelerate.Accelerator or None, got "
            f"{type(accelerator).__name__}."
        )
    from skuad._training import NET_ADAPTER

    token = NET_ADAPTER.set(_AccelerateAdapter(accelerator))
    try:
        yield accelerator
    finally:
        NET_ADAPTER.reset(token)


class _AccelerateAdapter:
    """Builds skuad's training nets with skorch's ``AccelerateMixin`` and makes them plain again.

    ``skuad._training.train_module`` calls ``adapt`` before building its net and ``restore``
    on the fitted one (through ``skuad._training.NET_ADAPTER``).
    """

    def __init__(self, accelerator):
        self.accelerator = accelerator

    def adapt(self, net_class, net_kwargs):
        accelerator = self.accelerator
        n_processes = accelerator.num_processes
        batch_size = net_kwargs["batch_size"]
        if accelerator.split_batches and batch_size % n_processes:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of the number of processes "
                f"({n_processes}) under data_parallel: each process takes an equal share of "
                "every batch."
            )
        if accelerator.process_index > 0:
            # Every process trains from the same torch random state (the detector's seed), so
            # random draws inside the network (dropout) would repeat the main process's draws
            # on the other shares of each batch: give the other processes streams of their own.
            torch.manual_seed(int(torch.randint(2**31 - 1, ())) + accelerator.process_index)
        net_kwargs = dict(net_kwargs)
        net_kwargs.update(
            accelerator=accelerator,
            # The accelerator places the module and every batch on its own device.
            device=None,
            # Accelerate shards torch DataLoaders over the processes; any other iterator
            # would hand every process all rows.
            iterator_train=torch.utils.data.DataLoader,
            iterator_valid=torch.utils.data.DataLoader,
            callbacks=[("average_losses", _AverageEpochLosses()), *net_kwargs["callbacks"]],
            # The log is printed by the main process only; skorch's PrintLog ignores `verbose`
            # for any sink but print, so print stays the sink of a silent net.
            callbacks__print_log__sink=accelerator.print if net_kwargs["verbose"] else print,
        )
        return _accelerated(net_class), net_kwargs

    def restore(self, net):
        """The fitted net as an instance of its plain class, with nothing of Accelerate left."""
        net._unwrap_accelerator()
        if self.accelerator.num_processes > 1:
            # DistributedDataParallel sends the main process's buffers (BatchNorm's running
            # statistics) to the others before each forward pass, so after the last one each
            # process holds those of its own share of the batch: give all the main one's.
            for name in net._modules:
                for buffer in getattr(net, name + "_").buffers():
                    torch.distributed.broadcast(buffer, src=0)
        for name in net._optimizers:
            optimizer = getattr(net, name + "_")
            # accelerate.optimizer.AcceleratedOptimizer keeps the real one as .optimizer.
            setattr(net, name + "_", getattr(optimizer, "optimizer", optimizer))
        for name in ("accelerator", "unwrap_after_train", "_wrapped_with_accelerator"):
            vars(net).pop(name, None)
        # AccelerateMixin made the accelerator's print the log's sink.
        net.callbacks__print_log__sink = print
        for _, callback in net.callbacks_:
            if getattr(callback, "sink", None) == self.accelerator.print:
                callback.sink = print
        net.device = str(next(net.module_.parameters()).device)
        net.__class__ = type(net).plain_class
        self.accelerator.free_memory()
        return net


@functools.cache
def _accelerated(net_class):
    """``net_class`` with skorch's ``AccelerateMixin`` mixed in (one class per net class)."""
    from skorch.hf import AccelerateMixin

    accelerated = type(
        f"Accelerated{net_class.__name__}",
        (AccelerateMixin, net_class),
        {
            "__module__": __name__,
            "__doc__": f"{net_class.__name__} trained through Accelerate.",
            "_initialize_accelerator": _initialize_accelerator,
            "plain_class": net_class,  # what the fitted net turns back into
        },
    )
    return accelerated


def _initialize_accelerator(net):
    """``AccelerateMixin._initialize_accelerator``, but criteria without trainable parameters
    are only moved to the accelerator's device.

    Accelerate wraps every module it prepares in ``DistributedDataParallel``, which refuses
    modules without trainable parameters (most skuad losses hold only buffers, such as Deep
    SVDD's centre) on several CPU processes.
    """
    from skorch.hf import AccelerateMixin

    criteria = net._criteria
    trainable = []
    for name in criteria:
        criterion = getattr(net, name + "_")
        if isinstance(criterion, torch.nn.Module) and not any(
            p.requires_grad for p in criterion.parameters()
        ):
            setattr(net, name + "_", criterion.to(net.accelerator.device))
        else:
            trainable.append(name)
    net._criteria = trainable
    try:
        return AccelerateMixin._initialize_accelerator(net)
    finally:
        net._criteria = criteria


class _AverageEpochLosses(Callback):
    """Replace the epoch's training and validation losses by their mean over the processes.

    Each process computes its losses on its own share of the rows; callbacks that act on
    them (early stopping, the divergence check) must decide the same on every process, or
    the processes would part ways and wait on each other forever.
    """

    def on_epoch_end(self, net, **kwargs):
        for key in ("train_loss", "valid_loss"):
            value = net.history[-1].get(key)
            if value is not None:
                local = torch.tensor(
                    float(value), dtype=torch.float64, device=net.accelerator.device
                )
                net.history.record(key, float(net.accelerator.reduce(local, reduction="mean")))


# ---------------------------------------------------------------------- scoring: Dask
def _parameters(method, verb):
    return f"""\
Parameters
----------
detector : fitted estimator
    A fitted skuad detector, or any fitted scikit-learn outlier detector or pipeline
    with a ``{method}`` method.
X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame
    The rows to {verb}. A Dask array may be chunked along the rows in any way; chunks
    along the features are merged first.
"""


@fill_doc(parameters=_parameters("score_samples", "score"))
def score_samples(detector, X):
    """Normality scores of a Dask array or DataFrame, computed block by block.

    Each block of rows is scored by ``detector.score_samples`` where it lives (a Dask
    worker, or this process under Dask's local scheduler), so only a few blocks are in
    memory at a time. Scores do not depend on how the rows are split into blocks.

    %(parameters)s

    Returns
    -------
    scores : dask.array.Array of shape (n_samples,) or dask.dataframe.Series
        Lazy float64 scores, chunked as ``X``'s rows (a Series with ``X``'s index for a
        DataFrame); call ``.compute()``, or store them (for example with
        ``dask.array.to_npy_stack`` or ``Series.to_parquet``) without gathering them.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skuad import DeepSVDD
    >>> from skuad.parallel import score_samples
    >>> X = np.random.RandomState(0).normal(size=(200, 4))
    >>> detector = DeepSVDD(epochs=2, random_state=0).fit(X)
    >>> scores = score_samples(detector, da.from_array(X, chunks=(64, 4)))
    >>> bool(np.array_equal(scores.compute(), detector.score_samples(X)))
    True
    """
    return _map_rows(detector, X, "score_samples", np.float64)


@fill_doc(parameters=_parameters("decision_function", "score"))
def decision_function(detector, X):
    """``detector.decision_function`` of a Dask array or DataFrame, block by block.

    The detector's ``offset_`` travels with it to each block, so the values equal
    ``score_samples(detector, X) - detector.offset_``, each row scored once.

    %(parameters)s

    Returns
    -------
    decision : dask.array.Array of shape (n_samples,) or dask.dataframe.Series
        Lazy float64 values, negative for outliers (see :func:`score_samples`).
    """
    return _map_rows(detector, X, "decision_function", np.float64)


@fill_doc(parameters=_parameters("predict", "label"))
def predict(detector, X):
    """``detector.predict`` of a Dask array or DataFrame, block by block: +1 inlier, -1 outlier.

    Labels are what ``detector.predict`` gives each block; rows are labelled one by one, so
    they do not depend on how the rows are split into blocks either.

    %(parameters)s

    Returns
    -------
    labels : dask.array.Array of shape (n_samples,) or dask.dataframe.Series
        Lazy int64 labels (see :func:`score_samples`).
    """
    return _map_rows(detector, X, "predict", np.int64)


def _map_rows(detector, X, method, dtype):
    """``getattr(detector, method)`` mapped over the row blocks of a Dask collection."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "Scoring Dask collections needs Dask: pip install 'skuad[distributed]'."
        ) from exc
    if not hasattr(detector, method):
        raise ValueError(f"{type(detector).__name__} has no {method} method.")
    check_is_fitted(detector)
    n_features = getattr(detector, "n_features_in_", None)
    # One graph node for the detector, shared by every block's task, instead of a copy in each.
    shared_detector = dask.delayed(_Tokenized(detector), pure=True)
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D Dask array of rows, got {X.ndim} dimension(s).")
        if n_features is not None and X.shape[1] != n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(detector).__name__} was fitted with "
                f"{n_features} features."
            )
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        return X.map_blocks(
            _apply_to_block,
            shared_detector,
            method,
            dtype,
            drop_axis=1,
            dtype=dtype,
            meta=np.empty((0,), dtype=dtype),
        )
    dask_dataframe = _dask_dataframe_module()
    if dask_dataframe is not None and isinstance(X, dask_dataframe.DataFrame):
        import pandas as pd

        if n_features is not None and len(X.columns) != n_features:
            raise ValueError(
                f"X has {len(X.columns)} columns, but {type(detector).__name__} was fitted with "
                f"{n_features} features."
            )
        return X.map_partitions(
            _apply_to_partition,
            shared_detector,
            method,
            dtype,
            meta=pd.Series(np.empty(0, dtype=dtype), name=method),
        )
    raise ValueError(
        "X must be a Dask array or a Dask DataFrame, got "
        f"{type(X).__module__}.{type(X).__name__}; call detector.{method}(X) for data in memory."
    )


class _Tokenized:
    """A detector with a Dask token of its own, new for every scoring call.

    Dask names graph nodes after a hash of their contents, but a fitted network does not
    pickle to the same bytes twice, and Dask's distributed scheduler refuses such objects. A
    fresh token per call also keeps results of a detector refitted in place from being taken
    for the earlier ones.
    """

    def __init__(self, detector):
        self.detector = detector
        self.token = uuid.uuid4().hex

    def __dask_tokenize__(self):
        return self.token


def _dask_dataframe_module():
    """``dask.dataframe``, or None where its own dependencies (pandas...) are missing."""
    try:
        import dask.dataframe
    except ImportError:
        return None
    return dask.dataframe


def _apply_to_block(block, shared_detector, method, dtype):
    if len(block) == 0:
        return np.empty(0, dtype=dtype)
    return np.asarray(getattr(shared_detector.detector, method)(block), dtype=dtype)


def _apply_to_partition(partition, shared_detector, method, dtype):
    import pandas as pd

    values = _apply_to_block(partition, shared_detector, method, dtype)
    return pd.Series(values, index=partition.index, name=method)
