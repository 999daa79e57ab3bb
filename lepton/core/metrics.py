"""Metrics that accumulate on the device: ``update`` never syncs with the host, ``result``
syncs once. Classification metrics read class indices from one-hot or sparse labels and
work on probabilities or logits alike (``logits=True`` when the trainer folded the final
activation into the loss)."""

from __future__ import annotations

import torch

from lepton.errors import ConfigError


class Metric:
    name = "metric"

    def __init__(self, name: str | None = None) -> None:
        if name:
            self.name = name
        self.device = torch.device("cpu")

    def reset(self, device: torch.device) -> None:
        self.device = device

    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool = False) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError


def _is_binary(y_pred: torch.Tensor) -> bool:
    return y_pred.dim() == 1 or y_pred.shape[-1] == 1


def class_indices(y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(true, predicted) class indices and the number of classes."""
    if _is_binary(y_pred):
        threshold = 0.0 if logits else 0.5
        pred = (y_pred.reshape(-1) > threshold).long()
        true = (y_true.reshape(-1) > 0.5).long()
        return true, pred, 2
    classes = y_pred.shape[-1]
    pred = y_pred.argmax(dim=-1).reshape(-1)
    if y_true.shape == y_pred.shape and classes > 1:
        true = y_true.argmax(dim=-1).reshape(-1)
    else:
        true = y_true.reshape(-1).long()
    return true, pred, classes


class Accuracy(Metric):
    name = "accuracy"

    def reset(self, device: torch.device) -> None:
        super().reset(device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.total = 0

    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool = False) -> None:
        true, pred, _ = class_indices(y_true, y_pred, logits)
        self.correct += (true == pred).sum()
        self.total += true.numel()

    def result(self) -> float:
        return float(self.correct) / max(self.total, 1)


class _Confusion(Metric):
    """Precision, recall and F1 from one confusion matrix (binary: of the positive class;
    multi-class: macro average)."""

    def reset(self, device: torch.device) -> None:
        super().reset(device)
        self.matrix: torch.Tensor | None = None

    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool = False) -> None:
        true, pred, classes = class_indices(y_true, y_pred, logits)
        counts = torch.bincount(true * classes + pred, minlength=classes * classes)
        counts = counts[: classes * classes].view(classes, classes)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.matrix is None:
            return torch.zeros(1), torch.zeros(1)
        m = self.matrix.double().cpu()
        tp = m.diag()
        precision = tp / m.sum(dim=0).clamp_min(1)
        recall = tp / m.sum(dim=1).clamp_min(1)
        if m.shape[0] == 2:
            return precision[1:], recall[1:]
        return precision, recall


class Precision(_Confusion):
    name = "precision"

    def result(self) -> float:
        return float(self.scores()[0].mean())


class Recall(_Confusion):
    name = "recall"

    def result(self) -> float:
        return float(self.scores()[1].mean())


class F1Score(_Confusion):
    name = "f1"

    def result(self) -> float:
        p, r = self.scores()
        return float((2 * p * r / (p + r).clamp_min(1e-12)).mean())


class AUC(Metric):
    """ROC AUC from score histograms (like Keras' 200 thresholds); multi-class is the macro
    one-vs-rest average."""

    name = "auc"
    bins = 200

    def reset(self, device: torch.device) -> None:
        super().reset(device)
        self.positive: torch.Tensor | None = None
        self.negative: torch.Tensor | None = None

    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool = False) -> None:
        if _is_binary(y_pred):
            scores = y_pred.reshape(-1, 1).float()
            scores = torch.sigmoid(scores) if logits else scores
            positive = (y_true.reshape(-1, 1) > 0.5)
        else:
            scores = y_pred.reshape(-1, y_pred.shape[-1]).float()
            scores = torch.softmax(scores, dim=-1) if logits else scores
            true, _, classes = class_indices(y_true, y_pred, logits)
            positive = torch.nn.functional.one_hot(true, classes).bool()
        columns = scores.shape[1]
        index = (scores.clamp(0, 1) * (self.bins - 1)).round().long()
        index = index + torch.arange(columns, device=scores.device) * self.bins
        size = columns * self.bins
        pos = torch.bincount(index[positive], minlength=size).view(columns, self.bins)
        neg = torch.bincount(index[~positive], minlength=size).view(columns, self.bins)
        if self.positive is None:
            self.positive, self.negative = pos, neg
        else:
            self.positive, self.negative = self.positive + pos, self.negative + neg

    def result(self) -> float:
        if self.positive is None:
            return 0.0
        pos, neg = self.positive.double().cpu(), self.negative.double().cpu()
        # Sweep thresholds from high to low: true/false positive rates.
        tp = pos.flip(1).cumsum(1)
        fp = neg.flip(1).cumsum(1)
        tpr = torch.cat([torch.zeros(pos.shape[0], 1), tp / tp[:, -1:].clamp_min(1)], dim=1)
        fpr = torch.cat([torch.zeros(neg.shape[0], 1), fp / fp[:, -1:].clamp_min(1)], dim=1)
        areas = torch.trapezoid(tpr, fpr, dim=1)
        valid = (pos.sum(1) > 0) & (neg.sum(1) > 0)
        return float(areas[valid].mean()) if valid.any() else 0.0


class _Mean(Metric):
    def reset(self, device: torch.device) -> None:
        super().reset(device)
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    def error(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool = False) -> None:
        err = self.error(y_true.reshape(y_pred.shape).to(y_pred.dtype), y_pred)
        self.total += err.sum().double()
        self.count += err.numel()

    def result(self) -> float:
        return float(self.total) / max(self.count, 1)


class MeanAbsoluteError(_Mean):
    name = "mae"

    def error(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return (y_pred - y_true).abs()


class MeanSquaredError(_Mean):
    name = "mse"

    def error(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return (y_pred - y_true) ** 2


class RootMeanSquaredError(MeanSquaredError):
    name = "rmse"

    def result(self) -> float:
        return super().result() ** 0.5


_BY_NAME: dict[str, type[Metric]] = {
    "accuracy": Accuracy, "acc": Accuracy, "precision": Precision, "recall": Recall,
    "f1": F1Score, "f1_score": F1Score, "auc": AUC, "mae": MeanAbsoluteError,
    "mse": MeanSquaredError, "rmse": RootMeanSquaredError,
}


def get(identifier: str | Metric) -> Metric:
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        metric = _BY_NAME[identifier]()
        metric.name = identifier if identifier != "acc" else "accuracy"
        return metric
    raise ConfigError("Unknown metric", expected=f"one of {sorted(_BY_NAME)} or a Metric object",
                      received=repr(identifier), fix="e.g. metrics=['accuracy', 'auc']")
