"""psa's AffinityNet data and random walk (Ahn & Kwak 2018), as the paper uses them to turn response
maps into pseudo labels.

* :func:`affinity_labels`: confident foreground and background from a CAM. The background score is
  ``(1 - max_c cam) ** alpha``; a dense CRF refines [background; cams] once with a low exponent
  (alpha 4: a strong background, so what stays foreground is confident) and once with a high one
  (psa: 24 or 32: a weak background, so what becomes background is confident). Label = the low
  exponent's argmax where it says foreground, background where the high exponent says background,
  ignore (255) between.
* :func:`pair_indices` / :func:`pair_labels`: pixel pairs within radius 5 on the stride-8 grid (each
  unordered pair once, as psa's ``get_indices_of_pairs``, here every pair inside the grid) and their
  classes: both background, both the same foreground class, or different classes; pairs touching an
  ignored pixel are skipped.
* :func:`random_walk`: the transition matrix T = A ** beta with columns normalised, applied t =
  2 ** logt times to the stride-8 scores ([background from alpha 16; cams], average-pooled by 8).
  psa squares a dense N x N matrix logt times; here T stays sparse (N x number of pairs) and the
  scores are multiplied by it t times, the same product, in memory linear in N.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from infercam.crf import PSA_CRF, CRFSettings, dense_crf
from infercam.voc import IGNORE_INDEX

PSA_RADIUS = 5
FEATURE_STRIDE = 8


def background_score(cams: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - max over classes) ** alpha, (H, W); all ones for an image without classes."""
    if len(cams) == 0:
        return np.ones(cams.shape[1:], dtype=np.float32)
    return np.power(1 - np.clip(cams.max(axis=0), 0, 1), alpha).astype(np.float32)


def affinity_labels(image: np.ndarray, cams: np.ndarray, class_ids, alpha_low: float = 4, alpha_high: float = 24,
                    crf: CRFSettings = PSA_CRF) -> np.ndarray:
    """(H, W) uint8: 0 confident background, c + 1 confident class c (0-based VOC index), 255 unsure."""
    voc_labels = voc_labels_of(class_ids)

    def refined(alpha: float) -> np.ndarray:
        scores = np.concatenate([background_score(cams, alpha)[None], cams], axis=0)
        return voc_labels[dense_crf(image, scores, crf).argmax(axis=0)]

    low, high = refined(alpha_low), refined(alpha_high)
    labels = low.copy()
    labels[low == 0] = IGNORE_INDEX
    labels[high == 0] = 0
    return labels


def pair_offsets(radius: int = PSA_RADIUS) -> list[tuple[int, int]]:
    """(dy, dx) of every unordered pair of grid cells closer than ``radius``, once each: to the
    right on the same row, or on a row below (psa's search order)."""
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dy * dy + dx * dx < radius * radius]
    return offsets


def pair_indices(height: int, width: int, radius: int = PSA_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) flat indices of every pair of :func:`pair_offsets` that lies on an (h, w) grid."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    firsts, seconds = [], []
    for dy, dx in pair_offsets(radius):
        y2, x2 = ys + dy, xs + dx
        inside = (y2 < height) & (x2 >= 0) & (x2 < width)
        firsts.append((ys * width + xs)[inside])
        seconds.append((y2 * width + x2)[inside])
    return torch.cat(firsts), torch.cat(seconds)


def shifted_pairs(grid, radius: int = PSA_RADIUS):
    """For each offset of :func:`pair_offsets`, the views (first, second) of a (..., h, w) array
    (numpy or torch) holding the first and the second cell of every pair with that offset; each
    view flattened row-major lists the pairs in the order of :func:`pair_indices`."""
    height, width = grid.shape[-2:]
    for dy, dx in pair_offsets(radius):
        yield (grid[..., :height - dy, max(0, -dx):width - max(0, dx)],
               grid[..., dy:, max(0, dx):width + min(0, dx)])


def pair_labels(labels: np.ndarray, radius: int = PSA_RADIUS) -> dict[str, np.ndarray]:
    """The classes of the pairs of :func:`pair_indices` on a label map of the feature grid (h, w):
    boolean (P,) masks ``bg_pos`` (both background), ``fg_pos`` (both the same foreground class)
    and ``neg`` (different classes); a pair touching an ignored pixel is in none of them."""
    pairs = list(shifted_pairs(np.asarray(labels), radius))
    a = np.concatenate([first.ravel() for first, _ in pairs])
    b = np.concatenate([second.ravel() for _, second in pairs])
    valid = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    return {"bg_pos": valid & (a == b) & (a == 0), "fg_pos": valid & (a == b) & (a != 0), "neg": valid & (a != b)}


def transition_matrix(affinities: torch.Tensor, first: torch.Tensor, second: torch.Tensor, size: int,
                      beta: float = 8) -> torch.Tensor:
    """Sparse (N, N) T: affinity ** beta between each pair (both ways) and 1 on the diagonal, each
    column divided by its sum (psa's ``aff_mat / aff_mat.sum(0)``)."""
    device = affinities.device
    diagonal = torch.arange(size, device=device)
    rows = torch.cat([first.to(device), second.to(device), diagonal])
    columns = torch.cat([second.to(device), first.to(device), diagonal])
    values = torch.cat([affinities.float().pow(beta)] * 2 + [torch.ones(size, device=device)])
    column_sums = column_sums_in_order(columns, values, size)
    return torch.sparse_coo_tensor(torch.stack([rows, columns]), values / column_sums[columns], (size, size),
                                   check_invariants=False).coalesce()


def column_sums_in_order(columns: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """(size,) sums of ``values`` by their ``columns``, added in the same order on every run and
    device: ``index_add_`` adds with atomics on CUDA, in an order (and so to last bits) that change
    from run to run, which can flip the walk's argmax ties. Each column's values are laid out in a
    row of a padded table (their input order kept) and the rows summed."""
    order = torch.argsort(columns, stable=True)
    columns, values = columns[order], values[order]
    counts = torch.bincount(columns, minlength=size)  # integer counts: exact in any order
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.arange(len(columns), device=columns.device) - starts[columns]
    table = torch.zeros(size, int(counts.max()) if len(columns) else 0, dtype=values.dtype, device=values.device)
    table[columns, slots] = values
    return table.sum(dim=1)


def random_walk(scores: torch.Tensor, transition: torch.Tensor, logt: int = 8) -> torch.Tensor:
    """Scores (K, h, w) on the feature grid walked t = 2 ** logt steps: ``scores @ T^t``. On a CPU
    the products run in scipy's CSR format (about 10x faster than torch's sparse COO product on 2
    cores); elsewhere in torch, on the tensors' device."""
    classes, height, width = scores.shape
    walk = _walk_scipy if transition.device.type == "cpu" else _walk_torch
    walked = walk(scores.reshape(classes, -1).float().t().contiguous(), transition, 2 ** logt)  # (N, K)
    return walked.t().reshape(classes, height, width)


def _walk_torch(walked: torch.Tensor, transition: torch.Tensor, steps: int) -> torch.Tensor:
    transposed = transition.t().coalesce()  # (scores @ T)^T = T^T @ scores^T
    for _ in range(steps):
        walked = torch.sparse.mm(transposed, walked)
    return walked


def _walk_scipy(walked: torch.Tensor, transition: torch.Tensor, steps: int) -> torch.Tensor:
    import scipy.sparse

    rows, columns = transition.indices().numpy()
    transposed = scipy.sparse.csr_matrix((transition.values().numpy(), (columns, rows)), shape=transition.shape)
    values = walked.numpy()
    for _ in range(steps):
        values = transposed @ values
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


def walk_scores(cams: np.ndarray, affinities: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                feature_shape: tuple[int, int], alpha: float = 16, beta: float = 8, logt: int = 8,
                stride: int = FEATURE_STRIDE) -> torch.Tensor:
    """psa's ``infer_aff``: [background (alpha 16); cams] average-pooled by ``stride`` onto the
    feature grid (the image padded to whole cells), walked, upsampled bilinearly back to the image:
    (1 + K, H, W) scores."""
    height, width = cams.shape[1:]
    if feature_shape[0] * stride < height or feature_shape[1] * stride < width:
        raise ValueError(f"a {feature_shape} feature grid at stride {stride} does not cover a {height} x {width} image")
    scores = np.concatenate([background_score(cams, alpha)[None], cams], axis=0)
    scores = torch.from_numpy(scores).to(affinities.device)
    padded = F.pad(scores, (0, feature_shape[1] * stride - width, 0, feature_shape[0] * stride - height))
    pooled = F.avg_pool2d(padded[None], stride)[0]
    transition = transition_matrix(affinities, first, second, feature_shape[0] * feature_shape[1], beta)
    walked = random_walk(pooled, transition, logt)
    full = F.interpolate(walked[None], size=(feature_shape[0] * stride, feature_shape[1] * stride), mode="bilinear",
                         align_corners=False)
    return full[0, :, :height, :width]


def walk_labels(cams: np.ndarray, class_ids, affinities: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                feature_shape: tuple[int, int], alpha: float = 16, beta: float = 8, logt: int = 8,
                stride: int = FEATURE_STRIDE) -> np.ndarray:
    """The argmax of :func:`walk_scores` as (H, W) uint8 VOC labels."""
    walked = walk_scores(cams, affinities, first, second, feature_shape, alpha, beta, logt, stride)
    return voc_labels_of(class_ids)[walked.argmax(dim=0).cpu().numpy()]


def voc_labels_of(class_ids) -> np.ndarray:
    """Row index of [background; the image's classes] -> VOC label (0, c + 1, ...)."""
    return np.concatenate([[0], np.asarray(class_ids, dtype=np.int64) + 1]).astype(np.uint8)


def affinity_loss(affinities: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor, neg: torch.Tensor):
    """psa's loss: the mean of -log(a) over background pairs and over foreground pairs, of
    -log(1 - a) over pairs of different classes, weighted 1/4, 1/4, 1/2 (each mean over the batch's
    pairs of that kind). Returns (loss, {"bg", "fg", "neg"} parts)."""

    def mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.float()
        return (values * mask).sum() / (mask.sum() + 1e-5)

    parts = {"bg": mean(-torch.log(affinities + 1e-5), bg_pos), "fg": mean(-torch.log(affinities + 1e-5), fg_pos),
             "neg": mean(-torch.log(1 + 1e-5 - affinities), neg)}
    return parts["bg"] / 4 + parts["fg"] / 4 + parts["neg"] / 2, parts
