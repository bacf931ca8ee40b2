"""The procedural sequences are video a codec can be judged on: deterministic, with a camera that
stands still, pans and drives, objects that move, and per-frame COCO annotations with video ids."""

import itertools

import numpy as np
from sc2_split.data.sequences import MOTIONS, coco_video_ground_truth, motion_plan, sequence, sequences

LENGTH = 8


def test_a_sequence_is_the_same_for_the_same_seed_and_differs_by_index() -> None:
    first, again = sequence("test", 3, LENGTH), sequence("test", 3, LENGTH)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert all(np.array_equal(a[1]["boxes"], b[1]["boxes"]) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0][0], sequence("test", 4, 1)[0][0])
    assert not np.array_equal(first[0][0], sequence("test", 3, 1, seed=1)[0][0])


def test_frames_follow_one_another_and_boxes_move_with_the_camera() -> None:
    clip = sequence("test", 3, LENGTH)
    shapes = {image.shape for image, _ in clip}
    assert shapes == {(480, 640, 3)}
    # Consecutive frames are close (video), yet not the same (motion and noise).
    diffs = [np.abs(a[0].astype(int) - b[0].astype(int)).mean() for a, b in itertools.pairwise(clip)]
    assert all(0 < d < 30 for d in diffs)
    for _, target in clip:
        boxes = target["boxes"]
        assert len(boxes) >= 1 and (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 480).all()
        assert len(target["iscrowd"]) == len(boxes)


def test_sequences_mix_every_camera_motion() -> None:
    plans = [motion_plan("test", index, 60) for index in range(6)]
    assert {m for plan in plans for m in plan} == set(MOTIONS)
    assert all(len(plan) == 60 for plan in plans)


def test_coco_document_names_videos_and_frames() -> None:
    clips = [sequence("test", index, 2) for index in (0, 1)]
    document = coco_video_ground_truth([target for clip in clips for _, target in clip])
    assert [v["id"] for v in document["videos"]] == [1, 2]
    assert [(i["video_id"], i["frame_id"]) for i in document["images"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len({i["id"] for i in document["images"]}) == 4
    ids = {i["id"] for i in document["images"]}
    assert document["annotations"] and all(a["image_id"] in ids for a in document["annotations"])
    assert {a["iscrowd"] for a in document["annotations"]} <= {0, 1}


def test_sequences_made_on_workers_are_those_made_in_process() -> None:
    apart, here = sequences("test", 2, 3, workers=2), sequences("test", 2, 3)
    assert len(apart) == 2
    for clip_apart, clip_here in zip(apart, here, strict=True):
        for (image_apart, target_apart), (image_here, target_here) in zip(clip_apart, clip_here, strict=True):
            np.testing.assert_array_equal(image_apart, image_here)
            assert target_apart.keys() == target_here.keys()
            for key, value in target_here.items():
                np.testing.assert_array_equal(target_apart[key], value)
