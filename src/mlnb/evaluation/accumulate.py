"""Streaming predictions: batches go in, one copy of the predictions comes out.

:class:`Accumulator` takes a model's outputs and the targets batch by batch
and appends them to preallocated numpy buffers that double when full (an
amortised O(1) append), so a large dataset's predictions are held once: no list
of batches is concatenated at the end, and :meth:`Accumulator.finish` shrinks
the buffers in place into a frozen :class:`Predictions`.

What is kept per task:

* ``classification``: ``y_true`` (n,) int64 and ``proba`` (n, C) float64.
  Outputs of shape (B, C), C >= 2, are probabilities when every finite row
  lies in [0, 1] and sums to 1 within 1e-3; otherwise they are logits and go
  through a float64 softmax.  A (B,) or (B, 1) output is the positive class of
  a binary model, a probability when every finite value lies in [0, 1], else a
  logit (sigmoid).  The first batch decides; pass ``output_type`` to say it
  outright (small logits of an untrained binary model can look like
  probabilities).  Probability rows are renormalised to sum to 1.
* ``regression``: ``y_true`` and ``y_pred``, float64, (n,) or (n, k).
* ``language-model``: outputs (B, T, V) logits and targets (B, T) token ids,
  already aligned (``outputs[:, t]`` predicts ``targets[:, t]``), positions
  equal to ``ignore_index`` (-100, as in torch) skipped.  Each batch is reduced
  at once to per-sequence ``nll_sum`` (float64) and ``tokens`` (int64); the
  logits are never kept.  The log-softmax runs in the logits' own precision
  (at least float32, on their device for torch tensors) because a float64 copy
  of B x T x V logits would double the largest array of the evaluation; the
  per-token losses are summed in float64.

Non-finite predictions are counted and reported by :meth:`~Accumulator.finish`
(how many rows, the first one); labels outside the model's classes are refused
at the batch that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.errors import InvalidArgument
from mlnb.refs import suggest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Accumulator", "IGNORE_INDEX", "Predictions", "TASKS", "accumulate", "check_task"]

TASKS = ("classification", "regression", "language-model")
IGNORE_INDEX = -100
_SUM_TOL = 1e-3  # a float32 softmax over many classes sums to 1 only within ~1e-5
_OUTPUT_TYPES = ("auto", "logits", "probabilities")


def check_task(task: str) -> str:
    """Return *task* if mlnb knows it, else raise :class:`InvalidArgument`."""
    if task not in TASKS:
        raise InvalidArgument(
            f"unknown task {task!r}{suggest(str(task), TASKS)}; use one of {', '.join(TASKS)}"
        )
    return task


@dataclass(frozen=True, eq=False)
class Predictions:
    """A model's predictions on a dataset, held once, read-only.

    Attributes
    ----------
    task : str
        ``"classification"``, ``"regression"`` or ``"language-model"``.
    y_true : numpy.ndarray or None
        Class indices (n,) or regression targets (n,) / (n, k); None for a
        language model.
    proba : numpy.ndarray or None
        Classification: class probabilities (n, C), rows summing to 1.
    y_pred : numpy.ndarray or None
        Regression: predictions, the shape of ``y_true``.
    nll_sum, tokens : numpy.ndarray or None
        Language model: per-sequence summed negative log-likelihood (nats) and
        number of scored tokens.
    """

    task: str
    y_true: np.ndarray | None
    proba: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    nll_sum: np.ndarray | None = None
    tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        import numpy as np

        check_task(self.task)
        need = {"classification": ("y_true", "proba"), "regression": ("y_true", "y_pred"),
                "language-model": ("nll_sum", "tokens")}[self.task]
        for field in ("y_true", "proba", "y_pred", "nll_sum", "tokens"):
            value = getattr(self, field)
            if field in need and value is None:
                raise InvalidArgument(f"{self.task} predictions need {field}; it is None")
            if value is not None:  # a read-only view: the caller's array stays writeable
                view = np.asarray(value).view()
                view.flags.writeable = False
                object.__setattr__(self, field, view)
        lengths = {f: len(getattr(self, f)) for f in need}
        if len(set(lengths.values())) > 1:
            raise InvalidArgument(f"prediction arrays differ in length: {lengths}")
        if self.task == "classification" and (self.proba.ndim != 2 or self.y_true.ndim != 1):
            raise InvalidArgument(f"classification needs y_true (n,) and proba (n, classes), "
                                  f"not {self.y_true.shape} and {self.proba.shape}")
        if self.task == "regression" and self.y_true.shape != self.y_pred.shape:
            raise InvalidArgument(f"regression y_true {self.y_true.shape} and y_pred "
                                  f"{self.y_pred.shape} differ in shape")
        if not len(self):
            raise InvalidArgument("no examples: the predictions are empty; evaluate on data "
                                  "with at least one example")

    def __len__(self) -> int:
        return len(self.tokens if self.task == "language-model" else self.y_true)

    def __repr__(self) -> str:
        extra = f", {self.num_classes} classes" if self.task == "classification" else ""
        return f"Predictions({self.task}, {len(self)} examples{extra})"

    @property
    def num_classes(self) -> int | None:
        """Number of classes of a classifier (columns of ``proba``), else None."""
        return None if self.proba is None else int(self.proba.shape[1])

    def take(self, index: Any) -> Predictions:
        """Return the predictions of rows *index* (a subset or a bootstrap resample)."""
        pick = {f: None if getattr(self, f) is None else getattr(self, f)[index]
                for f in ("y_true", "proba", "y_pred", "nll_sum", "tokens")}
        return Predictions(self.task, **pick)


class _Buffer:
    """A growing array: rows are appended into spare capacity that doubles when full."""

    def __init__(self, dtype: Any, tail: tuple[int, ...], capacity: int) -> None:
        import numpy as np

        self.array = np.empty((max(capacity, 1), *tail), dtype=dtype)
        self.size = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.size + len(rows)
        if need > len(self.array):
            # resize reallocates in place where it can; nothing else views the buffer
            self.array.resize((max(need, 2 * len(self.array)), *self.array.shape[1:]),
                              refcheck=False)
        self.array[self.size:need] = rows
        self.size = need

    def take(self) -> np.ndarray:
        self.array.resize((self.size, *self.array.shape[1:]), refcheck=False)
        return self.array


def _to_numpy(value: Any, what: str) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor, on any device, in any precision
        value = value.detach()
        if value.dtype.is_floating_point and value.element_size() < 4:
            value = value.float()
        value = value.cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InvalidArgument(f"{what} must be numbers, not dtype {array.dtype}")
    return array


def _class_indices(targets: np.ndarray, rows: int, offset: int, classes: int) -> np.ndarray:
    import numpy as np

    if targets.ndim != 1 or len(targets) != rows:
        raise InvalidArgument(
            f"targets have shape {targets.shape} but classification needs one class index "
            f"per row, shape ({rows},)")
    if targets.dtype.kind == "f":
        whole = np.isfinite(targets) & (targets == np.round(targets))
        if not whole.all():
            i = int(np.argmin(whole))
            raise InvalidArgument(f"targets must be class indices; got {targets[i]} at row "
                                  f"{offset + i}")
    labels = targets.astype(np.int64)
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        i = int(np.argmax(outside))
        raise InvalidArgument(
            f"label {labels[i]} at row {offset + i} but the model has {classes} classes "
            f"(0..{classes - 1}); check the label encoding or num_classes")
    return labels


class Accumulator:
    """Collects a model's outputs batch by batch into :class:`Predictions`.

    Parameters
    ----------
    task : str
        ``"classification"``, ``"regression"`` or ``"language-model"``.
    num_classes : int, optional
        Classification: the number of classes the outputs must have.
    output_type : {"auto", "logits", "probabilities"}
        How to read classification outputs; ``"auto"`` applies the rule of the
        module docstring to the first batch.
    ignore_index : int
        Language model: target id of positions that are not scored.
    size_hint : int, optional
        Expected number of examples (``len(dataset)``), to allocate once.
    """

    def __init__(self, task: str, *, num_classes: int | None = None,
                 output_type: str = "auto", ignore_index: int = IGNORE_INDEX,
                 size_hint: int | None = None) -> None:
        self.task = check_task(task)
        if output_type not in _OUTPUT_TYPES:
            raise InvalidArgument(f"output_type must be one of {', '.join(_OUTPUT_TYPES)}, "
                                  f"not {output_type!r}")
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
            raise InvalidArgument(f"num_classes must be an integer >= 2, not {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._kind = None if output_type == "auto" else output_type
        self._capacity = max(int(size_hint or 0), 1024)
        self._buffers: dict[str, _Buffer] = {}
        self._bad = [0, -1]  # rows with non-finite predictions, first such row
        self._bad_targets = [0, -1]
        self._rows = 0
        self._done: Predictions | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, outputs: Any, targets: Any) -> None:
        """Append one batch: the model's *outputs* and the *targets* (torch or numpy)."""
        if self._done is not None:
            raise InvalidArgument("this Accumulator is finished; start a new one")
        if self.task == "language-model":
            nll, tokens = self._token_losses(outputs, targets)
            self._append(nll_sum=nll, tokens=tokens)
        elif self.task == "classification":
            out = _to_numpy(outputs, "outputs")
            classes = self._classes(out)
            labels = _class_indices(_to_numpy(targets, "targets"), len(out), self._rows, classes)
            self._append(y_true=labels, proba=self._probabilities(out, classes))
        else:
            y_pred, y_true = self._regression(_to_numpy(outputs, "outputs"),
                                              _to_numpy(targets, "targets"))
            self._append(y_true=y_true, y_pred=y_pred)

    def finish(self) -> Predictions:
        """Return the predictions collected so far; the accumulator takes no more batches.

        Raises
        ------
        InvalidArgument
            No example was added, some predictions are NaN or infinite, or (for
            a language model) no position was scored.
        """
        if self._done is not None:
            return self._done
        if not self._rows:
            raise InvalidArgument("no examples: the data gave no rows to evaluate; pass a "
                                  "dataset with at least one example")
        for (count, first), what in ((self._bad, "predictions"), (self._bad_targets, "targets")):
            if count:
                raise InvalidArgument(
                    f"NaN or infinite {what} in {count} of {self._rows} rows (first at row "
                    f"{first}); check the model and the data for these rows")
        arrays = {name: buf.take() for name, buf in self._buffers.items()}
        self._buffers.clear()
        if self.task == "language-model":
            if not arrays["tokens"].any():
                raise InvalidArgument(f"no tokens to score: every target equals ignore_index "
                                      f"{self.ignore_index}")
            self._done = Predictions(self.task, None, **arrays)
        else:
            self._done = Predictions(self.task, **arrays)
        return self._done

    def _append(self, **columns: np.ndarray) -> None:
        for name, rows in columns.items():
            if name not in self._buffers:
                self._buffers[name] = _Buffer(rows.dtype, rows.shape[1:], self._capacity)
            self._buffers[name].extend(rows)
        self._rows += len(rows)

    def _count_bad(self, finite: np.ndarray, tally: list[int]) -> None:
        import numpy as np

        if not finite.all():
            if not tally[0]:
                tally[1] = self._rows + int(np.argmin(finite))
            tally[0] += int(len(finite) - finite.sum())

    def _classes(self, out: np.ndarray) -> int:
        """Check the shape of a batch of classification outputs; return its class count."""
        binary = out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)
        if not binary and (out.ndim != 2 or out.shape[1] < 2):
            raise InvalidArgument(
                f"classification outputs have shape {out.shape}; expected (batch, classes) "
                "logits or probabilities, or (batch,) for a binary model's positive class")
        columns = 2 if binary else out.shape[1]
        if self.num_classes is not None and columns != self.num_classes:
            raise InvalidArgument(f"the outputs have {columns} classes but num_classes="
                                  f"{self.num_classes}")
        if "proba" in self._buffers and columns != self._buffers["proba"].array.shape[1]:
            raise InvalidArgument(f"this batch has {columns} classes, earlier batches had "
                                  f"{self._buffers['proba'].array.shape[1]}")
        return columns

    def _probabilities(self, out: np.ndarray, columns: int) -> np.ndarray:
        import numpy as np

        binary = out.ndim == 1 or out.shape[1] == 1
        x = out.astype(np.float64).reshape(len(out), 1 if binary else columns)
        finite = np.isfinite(x).all(axis=1)
        looks = self._looks_like_probabilities(x[finite], binary)
        if self._kind is None and finite.any():
            self._kind = "probabilities" if looks else "logits"
        elif self._kind == "probabilities" and not looks:
            raise InvalidArgument(
                f"batch at row {self._rows} is not probabilities (values outside [0, 1] or "
                "rows not summing to 1) while the outputs were read as probabilities; pass "
                "output_type='logits' if the model gives logits")
        if binary:
            z = x[:, 0]
            # sigmoid as exp(-log(1 + e^-z)): no overflow for large |z|
            p = z if self._kind == "probabilities" else np.exp(-np.logaddexp(0.0, -z))
            proba = np.stack([1.0 - p, p], axis=1)
        elif self._kind == "probabilities":
            proba = x / x.sum(axis=1, keepdims=True)
        else:
            x -= x.max(axis=1, keepdims=True)
            np.exp(x, out=x)
            proba = x / x.sum(axis=1, keepdims=True)
        self._count_bad(np.isfinite(proba).all(axis=1), self._bad)
        return proba

    @staticmethod
    def _looks_like_probabilities(x: np.ndarray, binary: bool) -> bool:
        import numpy as np

        if not ((x >= 0) & (x <= 1)).all():
            return False
        return binary or bool((np.abs(x.sum(axis=1) - 1.0) <= _SUM_TOL).all())

    def _regression(self, out: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
        import numpy as np

        if out.ndim == 2 and out.shape[1] == 1 and targets.ndim == 1:
            out = out[:, 0]
        elif targets.ndim == 2 and targets.shape[1] == 1 and out.ndim == 1:
            targets = targets[:, 0]
        if out.shape != targets.shape or out.ndim not in (1, 2):
            raise InvalidArgument(
                f"regression outputs have shape {out.shape} and targets {targets.shape}; "
                "they must match, as (batch,) or (batch, outputs)")
        if "y_pred" in self._buffers and out.shape[1:] != self._buffers["y_pred"].array.shape[1:]:
            raise InvalidArgument(f"this batch has outputs of shape {out.shape[1:]} per row, "
                                  f"earlier ones {self._buffers['y_pred'].array.shape[1:]}")
        y_pred, y_true = out.astype(np.float64), targets.astype(np.float64)
        for values, tally in ((y_pred, self._bad), (y_true, self._bad_targets)):
            finite = np.isfinite(values)
            self._count_bad(finite if finite.ndim == 1 else finite.all(axis=1), tally)
        return y_pred, y_true

    def _token_losses(self, outputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        torch_input = hasattr(outputs, "detach")
        if not torch_input:
            outputs, targets = np.asarray(outputs), np.asarray(targets)
        shape, tshape = tuple(outputs.shape), tuple(targets.shape)
        if len(shape) != 3 or tshape != shape[:2]:
            raise InvalidArgument(
                f"language-model outputs have shape {shape} and targets {tshape}; expected "
                "(batch, positions, vocabulary) logits and (batch, positions) token ids")
        nll, tokens = (self._token_losses_torch if torch_input else self._token_losses_numpy)(
            outputs, targets)
        self._count_bad(np.isfinite(nll), self._bad)
        return nll, tokens

    def _check_tokens(self, targets: Any, vocabulary: int) -> Any:
        """Return the mask of scored positions; refuse ids outside the vocabulary."""
        import numpy as np

        scored = targets != self.ignore_index
        bad = scored & ((targets < 0) | (targets >= vocabulary))
        if bad.any():
            row, pos = (int(i[0]) for i in np.nonzero(np.asarray(bad.tolist())))
            raise InvalidArgument(
                f"token id {int(targets[row, pos])} at row {self._rows + row}, position {pos} "
                f"but the model has {vocabulary} tokens; ignored positions must equal "
                f"ignore_index {self.ignore_index}")
        return scored

    def _token_losses_torch(self, logits: Any, targets: Any) -> tuple[np.ndarray, ...]:
        import torch

        logits = logits.detach()
        if logits.element_size() < 4:
            logits = logits.float()
        targets = torch.as_tensor(targets, device=logits.device).long()
        scored = self._check_tokens(targets, logits.shape[-1])
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
            ignore_index=self.ignore_index, reduction="none")
        nll = nll.reshape(targets.shape).double().sum(dim=1)
        return nll.cpu().numpy(), scored.sum(dim=1).cpu().numpy().astype("int64")

    def _token_losses_numpy(self, logits: np.ndarray, targets: np.ndarray) -> tuple:
        import numpy as np

        if logits.dtype.kind != "f" or targets.dtype.kind not in "iu":
            raise InvalidArgument(f"language-model outputs must be float logits and targets "
                                  f"integer ids, not {logits.dtype} and {targets.dtype}")
        targets = targets.astype(np.int64)
        scored = self._check_tokens(targets, logits.shape[-1])
        x = logits.astype(np.result_type(logits.dtype, np.float32), copy=False)
        top = x.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(x - top).sum(axis=-1)) + top[..., 0]
        picked = np.take_along_axis(x, np.where(scored, targets, 0)[..., None], axis=-1)[..., 0]
        nll = np.where(scored, lse.astype(np.float64) - picked, 0.0)
        return nll.sum(axis=1), scored.sum(axis=1).astype(np.int64)


def accumulate(task: str, outputs: Any, targets: Any, **options: Any) -> Predictions:
    """Return :class:`Predictions` for whole arrays (one batch); *options* as :class:`Accumulator`."""
    acc = Accumulator(task, **options)
    acc.add(outputs, targets)
    return acc.finish()
