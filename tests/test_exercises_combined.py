"""The check of chapter 04's implement exercise (combined_maps): it passes the reference, and its plausible wrong answers
(WRONG_ANSWERS), which tests/test_exercises.py runs with the reference and a stub."""
from __future__ import annotations

import numpy as np

from infercam.exercises import exercise, run_checks
from infercam.exercises.combined import combined_maps
from infercam.split_unite import normalise_per_class, unite


def _crops(image, patches):
    return [image[patch.rows, patch.columns] for patch in patches]


def _by_size(crops):
    groups = {}
    for index, crop in enumerate(crops):
        groups.setdefault(crop.shape, []).append(index)
    return list(groups.values())


def _inferred_by_size(infer, crops, patches):
    """Each crop's maps, one call per size of crop, each put back with its own patch."""
    results = [None] * len(crops)
    for indices in _by_size(crops):
        for i, maps in zip(indices, infer([crops[i] for i in indices], [list(patches[i].class_ids) for i in indices])):
            results[i] = maps
    return results


def _finished(patches, inferred, class_ids, image):
    return normalise_per_class(unite(list(zip(patches, inferred)), class_ids, image.shape[:2]))


def _own_union(infer, image, patches, class_ids, add_in):
    """A union written by hand: ``add_in(region, map_)`` puts each patch's map into its class's region."""
    inferred = _inferred_by_size(infer, _crops(image, patches), patches)
    class_ids = list(class_ids)
    united = np.zeros((len(class_ids), *image.shape[:2]), dtype=np.float32)
    for patch, maps in zip(patches, inferred):
        for map_, class_id in zip(maps, patch.class_ids):
            add_in(united[class_ids.index(class_id), patch.rows, patch.columns], map_)
    return united / (united.max(axis=(1, 2), keepdims=True) + 1e-5)


def right_answer_with_its_own_union(infer, image, patches, class_ids):
    return _own_union(infer, image, patches, class_ids, add_in=lambda region, map_: np.maximum(region, map_, out=region))


def whole_image_then_cut(infer, image, patches, class_ids):
    # infers the image once and cuts each patch's map from it: no patch is seen on its own
    whole = infer([image], [list(class_ids)])[0]
    inferred = [whole[[list(class_ids).index(c) for c in patch.class_ids]][:, patch.rows, patch.columns] for patch in patches]
    return _finished(patches, inferred, class_ids, image)


def all_crops_in_one_call(infer, image, patches, class_ids):
    # forgets that the patches differ in size: one batch of every crop
    inferred = infer(_crops(image, patches), [list(patch.class_ids) for patch in patches])
    return _finished(patches, inferred, class_ids, image)


def results_in_group_order(infer, image, patches, class_ids):
    # pairs the patches with the groups' results as they come, not with each patch's own
    crops = _crops(image, patches)
    inferred = [maps for indices in _by_size(crops)
                for maps in infer([crops[i] for i in indices], [list(patches[i].class_ids) for i in indices])]
    return _finished(patches, inferred, class_ids, image)


def image_classes_for_every_patch(infer, image, patches, class_ids):
    # asks every patch for all the image's classes, though a per-class patch gives one
    crops = _crops(image, patches)
    inferred = [None] * len(crops)
    for indices in _by_size(crops):
        for i, maps in zip(indices, infer([crops[i] for i in indices], [list(class_ids)] * len(indices))):
            inferred[i] = maps
    return _finished(patches, inferred, class_ids, image)


def not_normalised_after_union(infer, image, patches, class_ids):
    inferred = _inferred_by_size(infer, _crops(image, patches), patches)
    return unite(list(zip(patches, inferred)), class_ids, image.shape[:2])


def overlaps_summed(infer, image, patches, class_ids):
    # overlapping patches added instead of their maximum
    return _own_union(infer, image, patches, class_ids, add_in=lambda region, map_: np.add(region, map_, out=region))


def divided_by_maximum_alone(infer, image, patches, class_ids):
    united = unite(list(zip(patches, _inferred_by_size(infer, _crops(image, patches), patches))), class_ids, image.shape[:2])
    with np.errstate(invalid="ignore", divide="ignore"):
        return united / united.max(axis=(1, 2), keepdims=True)


CASES = [case.description for case in exercise("combined_maps").cases]


def test_the_reference_and_an_independent_right_answer_pass():
    # Catches a case whose expected maps the reference cannot reproduce, and cases that only the
    # reference's own code path passes.
    assert run_checks("combined_maps", combined_maps).passed
    assert run_checks("combined_maps", right_answer_with_its_own_union).passed


WRONG_ANSWERS = [
    ("combined_maps", whole_image_then_cut, CASES[0]),  # normalised over the image, not within each patch
    ("combined_maps", all_crops_in_one_call, CASES[0]),  # crops of different sizes stacked: the inference refuses
    ("combined_maps", results_in_group_order, CASES[1]),  # a patch handed another patch's maps
    ("combined_maps", overlaps_summed, CASES[2]),  # overlapping patches added instead of their maximum
    ("combined_maps", image_classes_for_every_patch, CASES[3]),  # a per-class patch's map taken from the wrong class
    ("combined_maps", not_normalised_after_union, CASES[4]),  # on the common scale the united map never reaches 1
    ("combined_maps", divided_by_maximum_alone, CASES[5]),  # 0 / 0 for a class nothing responds to
]
