"""The one place that talks to skorch: device resolution, seeding, the training net and callbacks.

Detectors never build a skorch net themselves; they hand a module, a criterion and the training
rows to :func:`train_module` and read the fitted net back.
"""

import contextlib
import contextvars
import dataclasses
import math
import re
import sys
import threading

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PrintLog, ProgressBar
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor
from torch.overrides import TorchFunctionMode

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


# While set (by skuad.parallel.data_parallel), train_module builds its net through this adapter:
# ``adapter.adapt(net_class, net_kwargs)`` returns the class and keyword arguments to build the
# net with, and ``adapter.restore(net)`` turns the fitted net back into a plain one.
NET_ADAPTER = contextvars.ContextVar("skuad_net_adapter", default=None)


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def resolve_device(device):
    """Turn ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` into a usable ``torch.device``.

    Raises ``ValueError`` naming the problem for an unknown string or a CUDA device that this
    machine does not have.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not understood; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use device='cpu' or device='auto'."
        )
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible."
        )
    return resolved


_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed):
    """Seed torch for the block and give the caller's global RNG state back afterwards.

    Weight initialisation and dropout draw from torch's one global generator, so two fits in
    threads of one process (joblib's threading or Dask's threaded workers) would interleave
    their draws and lose reproducibility; the lock makes such fits take turns. Fits in
    separate processes do not share the generator and still run in parallel.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """Plain training hyper-parameters, as the estimator's public parameters give them."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adam"
    early_stopping: bool = False
    validation_fraction: float = 0.1
    n_iter_no_change: int = 10
    tol: float = 1e-4
    verbose: int = 0
    momentum: float = 0.0


class StopTraining(Exception):
    """Raised by a callback to end training after the current epoch, keeping the net as it is.

    skorch's own callbacks stop with KeyboardInterrupt, which skuad treats as a real interrupt.
    """


class _FitInterrupted(Exception):
    """Carries a KeyboardInterrupt past skorch, which would otherwise swallow it."""


class InterruptibleNet(NeuralNet):
    """skorch ``NeuralNet`` that lets a KeyboardInterrupt stop ``fit`` instead of ending it.

    skorch catches KeyboardInterrupt in ``partial_fit`` and returns the half-trained net as if
    training had finished; an estimator must instead stop and keep its previous state, so the
    interrupt is carried past skorch and raised again by :func:`train_module`. A callback that
    means to end training early raises :class:`StopTraining` instead.
    """

    # skorch pickles the attributes named here (as prefixes) apart and loads them with a
    # device map, so that a net trained on CUDA loads on a machine without it; everything else
    # is pickled as is, its tensors tied to their device. skuad hands skorch a built module and
    # criterion (the ``module`` and ``criterion`` parameters are ``module_`` and ``criterion_``
    # themselves) and callbacks, a user's of which may hold tensors, so these parameters join
    # ``module_``, ``criterion_`` and ``optimizer_`` there (one pickle: ``module`` and
    # ``module_`` stay one object, stored once). The seeded shuffling generator stays out: it
    # is a CPU generator, whose state must load as a CPU tensor, also on a CUDA machine.
    cuda_dependent_attributes_ = ["module", "criterion", "callbacks"]

    def fit_loop(self, X, y=None, **fit_params):
        self._modes_set = {}
        try:
            return super().fit_loop(X, y, **fit_params)
        except StopTraining:
            return self
        except KeyboardInterrupt as exc:
            raise _FitInterrupted from exc
        finally:
            # Outside fit, flags may change behind the net's back: set the whole tree each time.
            self._modes_set = None

    def _set_training(self, training=True):
        # skorch calls module.train(mode) before every batch; that walks the module tree and
        # rewrites every flag through nn.Module.__setattr__, about a tenth of a small
        # network's step. During a fit every mode change comes through here, so once a
        # module's whole tree has been set to a mode, its top flag says whether it still is.
        modes_set = getattr(self, "_modes_set", None)
        if modes_set is None:  # outside fit: a throwaway record, so the whole tree is set
            modes_set = {}
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and (
                modes_set.get(name) is not training or module.training != training
            ):
                module.train(training)
                modes_set[name] = training

    def get_default_callbacks(self):
        # skorch's epoch table, with colour only where it reaches a terminal.
        return [
            (name, _PlainPrintLog() if name == "print_log" else callback)
            for name, callback in super().get_default_callbacks()
        ]


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class _PlainPrintLog(PrintLog):
    """skorch's ``PrintLog`` without its colour codes unless standard output is a terminal
    (they would end up as escape characters in a log file or a notebook's saved output)."""

    def format_row(self, row, key, color):
        formatted = super().format_row(row, key, color)
        if isinstance(formatted, str) and not _stdout_is_terminal():
            return _ANSI_ESCAPE.sub("", formatted)
        return formatted


def _stdout_is_terminal():
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


class DetectorNet(InterruptibleNet):
    """skorch net for unsupervised objectives: the criterion receives the input batch, not a target.

    skorch yields a placeholder target when ``y`` is None; anomaly-detection losses are
    functions of the network output and the input, so ``get_loss`` passes ``X`` on instead.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.criterion_(y_pred, to_tensor(X, device=self.device))


class _EarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, ending training with :class:`StopTraining`.

    skorch's version raises KeyboardInterrupt, which :class:`InterruptibleNet` must treat as
    the user's; the best weights are still restored in ``on_train_end``.
    """

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt as exc:
            raise StopTraining from exc


def _forwarded(hook):
    """:class:`_UserCallback`'s skorch method ``hook``: the user's callback's own ``hook``."""

    def forward(self, net, **kwargs):
        try:
            getattr(self.callback, hook)(net, **kwargs)
        except KeyboardInterrupt as exc:
            raise StopTraining from exc

    forward.__name__ = forward.__qualname__ = hook
    return forward


class _UserCallback(Callback):
    """A user's skorch callback, run as is, except that ending training ends only the stage.

    skorch's callbacks end training by raising ``KeyboardInterrupt`` (``EarlyStopping`` does),
    which :class:`InterruptibleNet` must otherwise treat as the user's Ctrl-C and roll the fit
    back; from a user's callback it becomes :class:`StopTraining`.
    """

    def __init__(self, callback):
        self.callback = callback

    def initialize(self):
        self.callback.initialize()
        return self

    on_train_begin = _forwarded("on_train_begin")
    on_train_end = _forwarded("on_train_end")
    on_epoch_begin = _forwarded("on_epoch_begin")
    on_epoch_end = _forwarded("on_epoch_end")
    on_batch_begin = _forwarded("on_batch_begin")
    on_batch_end = _forwarded("on_batch_end")
    on_grad_computed = _forwarded("on_grad_computed")


class DivergenceCheck(Callback):
    """Stop training with a clear error as soon as an epoch's loss is not finite."""

    def on_epoch_end(self, net, **kwargs):
        for key in ("train_loss", "valid_loss"):
            value = net.history[-1].get(key)
            if value is not None and not math.isfinite(value):
                raise TrainingDivergedError(
                    f"Training diverged: the {key.replace('_', ' ')} became {value} in epoch "
                    f"{len(net.history)}. Try a smaller learning rate `lr`, a larger "
                    "`weight_decay`, or check that the input has no extreme values."
                )


class RowDataset(torch.utils.data.Dataset):
    """Training rows for skorch (its ``dataset`` parameter), indexed a whole batch at a time.

    Holds ``X`` (and targets ``y``, if any) as tensors, so a batch of indices is one gather;
    without targets a scalar placeholder stands in for ``y``, which :class:`DetectorNet`
    never reads. Rows that are not an array (no ``__array__``: rows computed on demand, such
    as sparse rows densified by :class:`skuad.base.ScaledRows`) are kept as they are and
    asked for one batch at a time, with a NumPy array of row numbers.
    """

    def __init__(self, X, y=None):
        self.X = torch.as_tensor(X) if hasattr(X, "__array__") else X
        self.y = None if y is None else torch.as_tensor(y)
        self._no_target = torch.zeros(())

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        index = torch.as_tensor(index)
        if isinstance(self.X, torch.Tensor):
            rows = self.X[index]
        else:
            rows = torch.as_tensor(self.X[index.numpy()])
        return rows, self._no_target if self.y is None else self.y[index]


def batch_loader(dataset, batch_size, shuffle=False, generator=None, drop_last=False):
    """An iterator over mini-batches that fetches each one with one indexing call.

    torch's default loader indexes skorch's ``Dataset`` row by row and collates the rows,
    which for small tabular networks costs about as much as the training step itself.
    :class:`_SlicedBatches` slices one index tensor per epoch instead and gives the same
    batches, in the same order, from the same generator draws as
    ``DataLoader(dataset, batch_size, shuffle, generator)``. skorch uses it as
    ``iterator_train`` / ``iterator_valid``.
    """
    return _SlicedBatches(dataset, batch_size, shuffle, generator, drop_last)


@dataclasses.dataclass(eq=False)  # compared by identity, like any iterator
class _SlicedBatches:
    """``dataset[order[i:i + batch_size]]`` for each batch: a ``DataLoader`` without its machinery.

    torch's ``RandomSampler`` draws one ``randperm`` per epoch and hands its entries out as
    Python ints for ``BatchSampler`` to regroup; slicing the permutation tensor itself skips
    both (together about a tenth of a small network's training step) and keeps the draws.
    """

    dataset: object
    batch_size: int
    shuffle: bool
    generator: torch.Generator | None
    drop_last: bool

    def __len__(self):
        n_rows = len(self.dataset)
        if self.drop_last:
            return n_rows // self.batch_size
        return -(-n_rows // self.batch_size)

    def __iter__(self):
        # A DataLoader draws a seed for its workers from the generator before sampling; draw
        # it too, so that the batches stay exactly those of the equivalent DataLoader.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        n_rows = len(self.dataset)
        if self.shuffle:
            generator = self.generator
            if generator is None:  # what RandomSampler does without a generator
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
                generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(n_rows, generator=generator)
        else:
            order = torch.arange(n_rows)
        dataset, order = _unwrap_subsets(self.dataset, order)
        stop = n_rows - n_rows % self.batch_size if self.drop_last else n_rows
        for start in range(0, stop, self.batch_size):
            yield dataset[order[start : start + self.batch_size]]
        if self.shuffle:
            # RandomSampler draws a second permutation for its ``num_samples % n`` tail even
            # when that tail is empty; keep the generator in step with it for the next epoch.
            torch.randperm(n_rows, generator=generator)


def _unwrap_subsets(dataset, order):
    """The dataset under any torch ``Subset`` (skorch's ``ValidSplit`` makes them), and
    ``order`` translated into its row numbers, so that every batch stays a single gather."""
    while isinstance(dataset, torch.utils.data.Subset):
        order = torch.as_tensor(dataset.indices)[order]
        dataset = dataset.dataset
    return dataset, order


def train_module(
    module,
    criterion,
    X,
    options,
    *,
    seed,
    device,
    callbacks=(),
    user_callbacks=(),
    y=None,
    stage=None,
):
    """Train ``module`` on rows ``X`` (a float32 array, or rows computed a batch at a time:
    see :class:`RowDataset`) to minimise ``criterion(module(x), x)``.

    With targets ``y`` (for example pseudo-labels) the criterion is called as
    ``criterion(module(x), y)`` instead, through a plain skorch ``NeuralNet``.
    Shuffling uses a generator seeded from ``seed``; no rows are held out unless
    ``options.early_stopping`` is set. Returns the fitted :class:`DetectorNet`, whose
    ``module_`` is ``module`` itself, trained in place. ``callbacks`` are the detector's own
    (``(name, callback)`` pairs), ``user_callbacks`` the user's (each run through
    :class:`_UserCallback`). With ``options.verbose``, the epoch table is headed by ``stage``.
    While ``NET_ADAPTER`` is set (by :func:`skuad.parallel.data_parallel`), the net is built
    and returned through it.
    """
    n_samples = len(X)
    batch_size = min(options.batch_size, n_samples)
    # The user's callbacks see every epoch: they run before the detector's own, any of which
    # may end the stage after the epoch.
    named_callbacks = [("divergence_check", DivergenceCheck())]
    taken = {"divergence_check", *(name for name, _ in callbacks)}
    for item in user_callbacks:
        name, callback = item if isinstance(item, (tuple, list)) else (type(item).__name__, item)
        unique, number = name, 1
        while unique in taken:
            number += 1
            unique = f"{name}_{number}"
        taken.add(unique)
        named_callbacks.append((unique, _UserCallback(callback)))
    named_callbacks += callbacks
    train_split = None
    if options.early_stopping:
        train_split = ValidSplit(options.validation_fraction, random_state=seed)
        named_callbacks.append(
            (
                "early_stopping",
                _EarlyStopping(
                    monitor="valid_loss",
                    patience=options.n_iter_no_change,
                    threshold=options.tol,
                    load_best=True,
                    sink=print if options.verbose else _silent,
                ),
            )
        )
    if options.verbose:
        named_callbacks.append(("progress_bar", ProgressBar()))
    optimizer_params = {"optimizer__weight_decay": options.weight_decay}
    if options.optimizer == "sgd":
        optimizer_params["optimizer__momentum"] = options.momentum
    net_class = DetectorNet if y is None else InterruptibleNet
    net_kwargs = dict(
        module=module,
        criterion=criterion,
        optimizer=OPTIMIZERS[options.optimizer],
        **optimizer_params,
        lr=options.lr,
        max_epochs=options.epochs,
        batch_size=batch_size,
        train_split=train_split,
        callbacks=named_callbacks,
        dataset=RowDataset,
        iterator_train=batch_loader,
        iterator_valid=batch_loader,
        iterator_train__shuffle=True,
        iterator_train__generator=torch.Generator().manual_seed(seed),
        # A trailing batch of one sample breaks BatchNorm in training mode; drop it.
        iterator_train__drop_last=n_samples > batch_size and n_samples % batch_size == 1,
        device=device,
        verbose=options.verbose,
    )
    adapter = NET_ADAPTER.get()
    if adapter is not None:
        net_class, net_kwargs = adapter.adapt(net_class, net_kwargs)
    net = net_class(**net_kwargs)
    if options.verbose and stage is not None:
        print(f"Training stage {stage!r}")
    try:
        net.fit(X, y)
    except _FitInterrupted as exc:
        raise KeyboardInterrupt from exc.__cause__
    return net if adapter is None else adapter.restore(net)


def _silent(*args, **kwargs):
    """A sink for skorch messages when ``verbose=0``."""


class _OutputBytes(TorchFunctionMode):
    """Adds up the bytes of every tensor that a torch function returns while active.

    Views (reshapes, slices) share their input's storage and are counted once; every output
    is kept alive until the mode exits, so a freed storage's address cannot be counted twice.
    """

    def __init__(self):
        super().__init__()
        self.total = 0
        self._storages = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in _tensors_in(result):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in self._storages:
                self._storages[storage.data_ptr()] = tensor
                self.total += storage.nbytes()
        return result


def _tensors_in(result):
    if isinstance(result, torch.Tensor):
        yield result
    elif isinstance(result, (tuple, list)):
        for item in result:
            yield from _tensors_in(item)


# Matrix products with at most this many output columns are computed row by row at scoring
# time (see RowIndependentProducts); wider ones keep the BLAS kernel.
_FEW_COLUMNS = 16
# Such a product's elementwise temporary (rows x columns x inner), and its gradient when an
# input gradient is taken (CLAD's ODIN step), is built for pieces of rows of at most this
# many bytes, so that it stays small whatever the batch size.
_PRODUCT_PIECE_BYTES = 2**20


def _in_row_pieces(product, x, elements_per_row):
    """``product(x)``, computed on consecutive pieces of ``x``'s rows (its first axis) whose
    temporaries hold at most ``_PRODUCT_PIECE_BYTES``; each row's result is the same, bit for
    bit, as the products below sum each row's own terms in one order."""
    rows = max(1, _PRODUCT_PIECE_BYTES // (elements_per_row * x.element_size()))
    if x.shape[0] <= rows:
        return product(x)
    return torch.cat([product(piece) for piece in x.split(rows)])


class RowIndependentProducts(TorchFunctionMode):
    """Computes narrow matrix products so that each row's result is its own, bit for bit.

    For a product with few output columns, BLAS (MKL here) may vectorize across the *rows* of
    the batch, and a row then gets different last bits depending on whether it falls in the
    vectorized part or in the tail -- that is, on its position in the batch, even at a fixed
    batch shape (measured: a 6 x 6 linear layer changed 40 % of the rows of a permuted batch).
    While this mode is active, ``linear`` and 2-D ``matmul`` with at most ``_FEW_COLUMNS``
    output columns are computed as an elementwise product summed over the inner dimension,
    which adds each output's terms in one order wherever its row sits. Wider products keep
    the BLAS kernel, whose order does not depend on the row's position.
    """

    _MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if weight.shape[0] <= _FEW_COLUMNS:

                def product(rows):
                    return (rows.unsqueeze(-2) * weight).sum(dim=-1)

                if x.dim() < 2:  # one unbatched row
                    out = product(x)
                else:
                    out = _in_row_pieces(product, x, math.prod(x.shape[1:-1]) * weight.numel())
                return out if bias is None else out + bias
        elif func in self._MATMULS and len(args) == 2 and not kwargs:
            a, b = args
            if a.dim() == 2 and b.dim() == 2 and b.shape[1] <= _FEW_COLUMNS:
                return _in_row_pieces(
                    lambda rows: (rows[:, :, None] * b[None, :, :]).sum(dim=1), a, b.numel()
                )
        return func(*args, **kwargs)


def forward_bytes_per_row(module, n_features, then=None):
    """Bytes that ``module`` allocates per input row in one eval-mode forward pass.

    Every intermediate tensor is counted as if all were alive at once, so this bounds the
    forward pass's peak from above. Two probe batches of different sizes separate the part
    that grows with the rows from a constant part (for example a reference table's norms).
    ``then(output, x)``, if given, runs after the module on each probe and what it allocates
    is counted too (for example the score computed from the output).
    """
    parameter = next(module.parameters())
    module.eval()
    probes = (2, 4)
    totals = []
    for n_rows in probes:
        # Distinct rows: a module may compute repeated rows once (ResAD's scorer does for a
        # padded batch), which would hide what a row of real data costs.
        x = torch.arange(n_rows * n_features, dtype=parameter.dtype, device=parameter.device)
        x = x.reshape(n_rows, n_features) / (n_rows * n_features)
        # The counter is entered first, so that it also sees the products that
        # RowIndependentProducts computes inside its own handler (their temporaries are the
        # largest tensors of a narrow layer).
        with torch.no_grad(), _OutputBytes() as counter, RowIndependentProducts():
            output = module(x)
            if then is not None:
                then(output, x)
        totals.append(counter.total)
    return max(totals[1] - totals[0], 0) / (probes[1] - probes[0])


def forward_in_batches(module, X, batch_size, transform=None, fixed_shape=False):
    """Yield ``(n_rows, x, module(x))`` for consecutive row batches of ``X``, in eval mode.

    Rows are cast to the module's dtype and moved to its device, with no gradients.
    ``transform`` maps a NumPy row batch to the network's input (for example a scaler), so
    memory grows with ``batch_size``, not with ``len(X)``. With ``fixed_shape``, a last,
    shorter batch is padded to ``batch_size`` rows (copies of its first row), so that every
    batch has one shape: ``x`` and the output then hold ``batch_size`` rows, of which the first
    ``n_rows`` are real.

    Why fixed shapes: BLAS and convolution libraries choose their kernels (and with them the
    order of floating-point sums) by the shape of the whole batch, so in float32 a row's
    output can change in its last bits with the number of rows it is sent with. With one
    shape every row goes through the same kernels; :class:`RowIndependentProducts` (active
    with ``fixed_shape``) makes the narrow products that BLAS vectorizes across rows
    independent of where the row sits in the batch as well.
    """
    parameter = next(module.parameters())
    module.eval()
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            rows = X[start : start + batch_size]
            if transform is not None:
                rows = transform(rows)
            x = torch.as_tensor(rows, dtype=parameter.dtype, device=parameter.device)
            n_rows = len(x)
            if fixed_shape and n_rows < batch_size:
                x = torch.cat([x, x[:1].expand(batch_size - n_rows, -1)])
            with RowIndependentProducts() if fixed_shape else contextlib.nullcontext():
                output = module(x)
            yield n_rows, x, output
