"""Dense CRF, affinity labels, pixel pairs and the random walk on constructed inputs with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infercam.affinity import (affinity_labels, column_sums_in_order, pair_indices, pair_labels, pair_offsets,
                               random_walk, transition_matrix, walk_labels, walk_scores)
from infercam.crf import CRFSettings, dense_crf

UNARY_ONLY = CRFSettings(iterations=1, gaussian_compat=0, bilateral_compat=0)  # the CRF reduces to the argmax


def test_crf_cleans_a_noisy_unary_along_the_image_edges():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255
    truth = (np.arange(40)[None, :] >= 20).repeat(40, axis=0)
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random((40, 40)) < 0.2, ~truth, truth)  # 20% of pixels flipped
    probabilities = np.stack([np.where(noisy, 0.3, 0.7), np.where(noisy, 0.7, 0.3)]).astype(np.float32)
    refined = dense_crf(image, probabilities).argmax(axis=0)
    assert (probabilities.argmax(axis=0) == truth).mean() < 0.85
    assert (refined == truth).mean() > 0.99
    with pytest.raises(ValueError, match="must be"):
        dense_crf(image, probabilities[:, :10])


def test_affinity_labels_keep_the_confident_and_ignore_the_rest():
    image = np.zeros((20, 50, 3), np.uint8)
    cams = np.zeros((1, 20, 50), np.float32)
    for left, value in zip(range(0, 50, 10), (1.0, 0.2, 0.1, 0.05, 0.0)):
        cams[0, :, left:left + 10] = value
        image[:, left:left + 10] = left * 5  # each strip its own colour, so the bilateral kernel keeps them apart
    labels = affinity_labels(image, cams, [6], alpha_low=4, alpha_high=24, crf=UNARY_ONLY)
    # by hand: background (1 - v)^4 / (1 - v)^24 against the class score v
    #   v = 1: class in both -> 7;  0.2: 0.41 > 0.2 (low says background), 0.0047 < 0.2 (high says class) -> 255
    #   0.1: 0.66 > 0.1, 0.080 < 0.1 -> 255;  0.05: 0.29 > 0.05 in both -> 0;  0 -> 0
    assert [int(labels[0, left]) for left in range(0, 50, 10)] == [7, 255, 255, 0, 0]
    assert np.array_equal(labels, np.repeat(labels[:1], 20, axis=0))
    with_crf = affinity_labels(image, cams, [6])  # psa's CRF: the strips' interiors keep their labels
    assert [int(with_crf[10, left + 5]) for left in range(0, 50, 10)] == [7, 255, 255, 0, 0]


def test_pairs_within_the_radius_once_each_and_their_classes():
    assert pair_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    assert len(pair_offsets(5)) == 34  # psa: 68 neighbours per pixel, each pair counted once
    labels = np.array([[0, 0, 3],
                       [0, 3, 255]], np.uint8)
    first, second = pair_indices(2, 3, radius=2)
    pairs = {kind: {(int(f), int(t)) for f, t, m in zip(first, second, mask) if m}
             for kind, mask in pair_labels(labels, radius=2).items()}
    # flat indices: 0 1 2 / 3 4 5
    assert pairs["bg_pos"] == {(0, 1), (0, 3), (1, 3)}
    assert pairs["fg_pos"] == {(2, 4)}
    assert pairs["neg"] == {(1, 2), (3, 4), (1, 4), (0, 4)}  # pairs with pixel 5 (ignored) are in none
    first, second = pair_indices(2, 3, radius=2)
    assert len(first) == 4 + 2 + 3 + 2  # (0, 1): 2 rows x 2; (1, -1): 2; (1, 0): 3; (1, 1): 2
    assert set(zip(first.tolist(), second.tolist())) >= {(0, 1), (1, 3), (0, 3), (0, 4)}


def test_sparse_walk_equals_psa_s_dense_matrix_power():
    torch.manual_seed(0)
    height, width, logt = 6, 7, 3
    first, second = pair_indices(height, width, radius=3)
    affinities = torch.rand(len(first))
    transition = transition_matrix(affinities, first, second, height * width, beta=2)
    dense = transition.to_dense()
    assert torch.allclose(dense.sum(dim=0), torch.ones(height * width))  # columns are distributions
    power = dense.clone()
    for _ in range(logt):  # psa: trans_mat = trans_mat @ trans_mat, logt times
        power = power @ power
    scores = torch.rand(3, height, width)
    expected = (scores.reshape(3, -1) @ power).reshape(3, height, width)
    assert torch.allclose(random_walk(scores, transition, logt), expected, atol=1e-5)
    from infercam.affinity import _walk_torch  # the path a GPU takes, checked here on the CPU

    flat = scores.reshape(3, -1).t().contiguous()
    assert torch.allclose(_walk_torch(flat, transition, 2 ** logt).t().reshape(3, height, width), expected, atol=1e-5)


def test_column_sums_are_index_add_s_numbers_without_its_atomic_adds(monkeypatch):
    # index_add_ adds with atomics on CUDA (last bits change between
    # runs); the ordered reduction must give index_add_'s sums and never call it.
    torch.manual_seed(0)
    first, second = pair_indices(9, 11)
    size = 9 * 11
    columns = torch.cat([second, first, torch.arange(size)])
    values = torch.rand(len(columns)) ** 8
    expected = torch.zeros(size).index_add_(0, columns, values)
    assert torch.allclose(column_sums_in_order(columns, values, size), expected, rtol=1e-6, atol=0)
    assert torch.equal(column_sums_in_order(columns, values, size), column_sums_in_order(columns, values, size))
    assert column_sums_in_order(torch.tensor([3, 0, 3]), torch.tensor([1.0, 2.0, 4.0]), 5).tolist() == [2, 0, 0, 5, 0]

    def refuse(*args, **kwargs):
        raise AssertionError("the transition matrix must not sum its columns with index_add_ (atomic on CUDA)")

    monkeypatch.setattr(torch.Tensor, "index_add_", refuse)
    monkeypatch.setattr(torch, "index_add", refuse)
    transition = transition_matrix(torch.rand(len(first)), first, second, size)
    assert torch.allclose(torch.sparse.sum(transition, dim=0).to_dense(), torch.ones(size))


def test_walk_spreads_a_class_inside_its_region_and_not_across_a_strong_edge():
    height, width = 8, 16
    first, second = pair_indices(height, width)
    same_side = (first % width < 8) == (second % width < 8)
    affinities = torch.where(same_side, torch.tensor(0.9), torch.tensor(1e-4))
    cams = np.zeros((1, height * 8, width * 8), np.float32)
    cams[0, :, :64] = 0.5  # the class all over the left half ...
    cams[0, 24:40, 24:40] = 0.0  # ... but a hole in its CAM
    hole = (slice(24, 40), slice(24, 40))
    walked = walk_labels(cams, [11], affinities, first, second, (height, width), alpha=16, beta=8, logt=6)
    assert (walked[hole] == 12).all()  # the walk fills the hole from its region
    assert (walked[:, 64:] == 0).all()  # and nothing crosses the edge
    # with no affinity anywhere T is the identity: the hole stays what the CAM says, background
    isolated = walk_labels(cams, [11], torch.full_like(affinities, 1e-4), first, second, (height, width), logt=6)
    assert (isolated[hole] == 0).mean() > 0.5 and (isolated[:, :16] == 12).all()


def test_psa_loss_by_hand():
    from infercam.affinity import affinity_loss

    affinities = torch.tensor([[0.9, 0.5, 0.2, 0.8]])
    bg = torch.tensor([[True, False, False, False]])
    fg = torch.tensor([[False, True, False, False]])
    neg = torch.tensor([[False, False, True, True]])
    loss, parts = affinity_loss(affinities, bg, fg, neg)
    expected_neg = (-np.log(0.8 + 1e-5) - np.log(0.2 + 1e-5)) / 2
    assert parts["bg"].item() == pytest.approx(-np.log(0.9 + 1e-5), rel=1e-4)
    assert parts["fg"].item() == pytest.approx(-np.log(0.5 + 1e-5), rel=1e-4)
    assert parts["neg"].item() == pytest.approx(expected_neg, rel=1e-4)
    assert loss.item() == pytest.approx(-np.log(0.9) / 4 - np.log(0.5) / 4 + expected_neg / 2, rel=1e-3)
    empty = torch.zeros_like(bg)
    assert affinity_loss(affinities, empty, empty, empty)[0].item() == 0  # no pairs of a kind: it adds nothing


def test_offline_affinity_net_gives_affinities_and_learns():
    from infercam.models import build_affinity_net

    torch.manual_seed(0)
    model = build_affinity_net("resnet18", width=8)
    x = torch.randn(2, 3, 64, 64)
    assert model.features(x).shape == (2, 448, 8, 8)
    first, second = pair_indices(8, 8)
    labels = np.zeros((8, 8), np.uint8)
    labels[:, 4:] = 5
    pairs = {k: torch.from_numpy(v)[None].expand(2, -1) for k, v in pair_labels(labels).items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        affinities = model(x)
        assert affinities.shape == (2, len(first)) and (affinities > 0).all() and (affinities <= 1).all()
        loss, _ = affinity_loss_of(affinities, pairs)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def affinity_loss_of(affinities, pairs):
    from infercam.affinity import affinity_loss

    return affinity_loss(affinities, pairs["bg_pos"], pairs["fg_pos"], pairs["neg"])


def test_affinities_by_shifted_views_match_the_pairs_gathered_one_by_one():
    from infercam.models.affinity import pair_affinities

    features = torch.randn(2, 5, 6, 7)
    first, second = pair_indices(6, 7, radius=3)
    flat = features.flatten(2)
    gathered = torch.exp(-(flat[:, :, first] - flat[:, :, second]).abs().mean(dim=1))
    assert torch.allclose(pair_affinities(features, radius=3), gathered, atol=1e-6)


def test_beta_sharpens_the_transition_matrix_by_hand():
    # Catches beta ignored or forced to 1 (in transition_matrix or on its way from walk_scores): two
    # cells with affinity 0.5, beta 2: off-diagonal 0.25, diagonal 1, columns / 1.25 -> 0.8 / 0.2;
    # beta 1 would give 2/3 / 1/3.
    first, second = pair_indices(1, 2)
    affinity = torch.tensor([0.5])
    dense = transition_matrix(affinity, first, second, 2, beta=2).to_dense()
    assert torch.allclose(dense, torch.tensor([[0.8, 0.2], [0.2, 0.8]]))
    # walk_scores with stride 1 and one step (logt 0): scores @ T, by hand
    cams = np.array([[[1.0, 0.0]]], np.float32)  # the class on the left cell only; background (1 - cam)^alpha
    walked = walk_scores(cams, affinity, first, second, (1, 2), alpha=1, beta=2, logt=0, stride=1)
    # rows (background, class) = ([0, 1], [1, 0]) @ T
    assert walked[:, 0, 0].tolist() == pytest.approx([0.2, 0.8], abs=1e-6)
    assert walked[:, 0, 1].tolist() == pytest.approx([0.8, 0.2], abs=1e-6)
    sharper = walk_scores(cams, affinity, first, second, (1, 2), alpha=1, beta=8, logt=0, stride=1)
    assert sharper[1, 0, 1].item() == pytest.approx(0.5 ** 8 / (1 + 0.5 ** 8), abs=1e-6)


def test_walk_scores_on_a_size_not_a_multiple_of_8_pads_pools_and_crops_like_psa():
    # Catches a wrong pad/crop side, a grid rounded down, or the padding left in the output: a
    # 20 x 30 image on a 3 x 4 grid (24 x 32 padded with zeros, as psa's infer_aff pads). With no
    # affinity T is the identity, so the output is the pooled scores upsampled.
    first, second = pair_indices(3, 4)
    isolated = torch.full((len(first),), 1e-4)
    cams = np.full((1, 20, 30), 0.5, np.float32)
    walked = walk_scores(cams, isolated, first, second, (3, 4), alpha=16, beta=8, logt=0)
    assert walked.shape == (2, 20, 30)
    # pooled class score: full cells 0.5; the last row of cells holds 4 real rows of 8 -> 0.25; the
    # last column 6 of 8 -> 0.375; the corner cell 24 of 64 -> 0.1875
    assert walked[1, 0, 0].item() == pytest.approx(0.5, abs=1e-5)
    # pixel (19, 29): bilinear between cell rows 1 (weight 1/16) and 2 (15/16), in the last column
    assert walked[1, 19, 29].item() == pytest.approx(0.375 / 16 + 0.1875 * 15 / 16, abs=1e-5)
    with pytest.raises(ValueError, match=r"\(2, 4\) feature grid at stride 8 does not cover a 20 x 30 image"):
        walk_scores(cams, isolated, first, second, (2, 4))


def test_affinity_labels_with_two_classes_by_hand():
    # Catches class rows mapped to the wrong VOC label (e.g. sorted or in a fixed order) and a
    # background that takes one class's map rather than the max over classes.
    image = np.zeros((10, 60, 3), np.uint8)
    cams = np.zeros((2, 10, 60), np.float32)
    strips = [(1.0, 0.0), (0.0, 1.0), (0.6, 0.9), (0.2, 0.1), (0.0, 0.0), (0.1, 0.3)]
    for index, values in enumerate(strips):
        cams[:, :, index * 10:(index + 1) * 10] = np.array(values)[:, None, None]
        image[:, index * 10:(index + 1) * 10] = index * 40
    # by hand, background (1 - max)^4 / (1 - max)^24 against the two classes 14 (row 0) and 2 (row 1):
    #   (1, 0) -> 15; (0, 1) -> 3; (0.6, 0.9): 1e-4 and ~0 < 0.9 -> 3; (0.2, 0.1): 0.41 > 0.2 but
    #   0.0047 < 0.2 -> 255; nothing -> 0; (0.1, 0.3): 0.24 < 0.3 -> 3
    expected = [15, 3, 3, 255, 0, 3]
    labels = affinity_labels(image, cams, [14, 2], crf=UNARY_ONLY)
    assert [int(labels[5, index * 10 + 5]) for index in range(6)] == expected
    swapped = affinity_labels(image, cams[::-1].copy(), [2, 14], crf=UNARY_ONLY)
    assert np.array_equal(swapped, labels)


def test_pair_labels_with_three_classes_by_hand():
    # Catches "both foreground" taken for "the same class": pairs of two different objects are negatives.
    labels = np.array([[0, 3, 3],
                       [7, 7, 255],
                       [7, 9, 0]], np.uint8)
    first, second = pair_indices(3, 3, radius=2)
    pairs = {kind: {(int(f), int(t)) for f, t, m in zip(first, second, mask) if m}
             for kind, mask in pair_labels(labels, radius=2).items()}
    # flat indices: 0 1 2 / 3 4 5 / 6 7 8; radius 2: right, down-left, down, down-right
    assert pairs["bg_pos"] == set()  # the two background pixels (0, 8) are not neighbours
    assert pairs["fg_pos"] == {(1, 2), (3, 4), (3, 6), (4, 6)}
    assert pairs["neg"] == {(0, 1), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4), (4, 7), (3, 7), (6, 7), (4, 8), (7, 8)}
