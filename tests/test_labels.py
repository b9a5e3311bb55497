"""Label maps against the tables of DESIGN.md §2, entry by entry."""
import numpy as np
import pytest

from udaseg.data import labels as L

# DESIGN.md §2: labelId -> trainId
LABELID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                      24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
NAMES_19 = ["road", "sidewalk", "building", "wall", "fence", "pole", "light", "sign", "vegetation",
            "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
# DESIGN.md §2: SYNTHIA id -> 16-class index
SYNTHIA_TO_16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11, 8: 12,
                 19: 13, 12: 14, 11: 15}
NAMES_16 = ["road", "sidewalk", "building", "wall", "fence", "pole", "light", "sign", "vegetation",
            "sky", "person", "rider", "car", "bus", "motorcycle", "bicycle"]
PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
           (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
           (0, 80, 100), (0, 0, 230), (119, 11, 32)]


def test_19_classes_names_and_palette():
    assert list(L.CLASSES_19) == NAMES_19
    assert L.PALETTE_19.tolist() == [list(c) for c in PALETTE]


@pytest.mark.parametrize("labelid", range(256))
def test_labelid_lut_every_entry(labelid):
    assert L.LABELID_TO_TRAINID[labelid] == LABELID_TO_TRAINID.get(labelid, 255)
    assert L.GTA5_LUT is L.CITYSCAPES_LUT is L.LABELID_TO_TRAINID


def test_trainid_to_labelid_inverts_the_map():
    for labelid, trainid in LABELID_TO_TRAINID.items():
        assert L.TRAINID_TO_LABELID[trainid] == labelid
    ids = np.array([[0, 13, 18, 255]], dtype=np.uint8)
    assert L.trainid_to_labelid(ids).tolist() == [[7, 26, 33, 0]]


def test_synthia_maps_every_entry():
    for sid in range(300):
        assert L.SYNTHIA_LUT_16[sid] == SYNTHIA_TO_16.get(sid, 255)
        expected19 = NAMES_19.index(NAMES_16[SYNTHIA_TO_16[sid]]) if sid in SYNTHIA_TO_16 else 255
        assert L.SYNTHIA_LUT_19[sid] == expected19
    assert list(L.CLASSES_16) == NAMES_16
    assert [L.SYNTHIA_ID_TO_16[s] for s in L.SYNTHIA_ID_OF_16] == list(range(16))


def test_protocols_16_and_13():
    assert [NAMES_19[i] for i in L.PROTOCOL_16_IN_19] == NAMES_16
    names13 = [n for n in NAMES_16 if n not in ("wall", "fence", "pole")]
    assert list(L.CLASSES_13) == names13
    assert [NAMES_16[i] for i in L.PROTOCOL_13_IN_16] == names13
    assert [NAMES_19[i] for i in L.PROTOCOL_13_IN_19] == names13
    # 19 -> 16 drops terrain (9), truck (14), train (16)
    assert [int(L.TRAINID19_TO_16[t]) for t in (9, 14, 16)] == [255, 255, 255]
    assert [int(L.TRAINID19_TO_16[t]) for t in L.PROTOCOL_16_IN_19] == list(range(16))
    # a 16-class prediction converts to the labelIds of its classes
    assert L.trainid_to_labelid(np.arange(16, dtype=np.uint8), 16).tolist() == [
        LABELID_TO_TRAINID_INV[NAMES_19.index(n)] for n in NAMES_16]


LABELID_TO_TRAINID_INV = {t: lid for lid, t in LABELID_TO_TRAINID.items()}


def test_map_labels_counts_ids_the_format_does_not_define():
    raw = np.array([[7, 0, 33], [34, 255, 26]], dtype=np.uint8)
    out, outside = L.map_labels(raw, L.LABELID_TO_TRAINID, L.MAX_LABELID)
    assert out.tolist() == [[0, 255, 18], [255, 255, 13]]
    assert outside == 2  # 34 and 255; labelId 0 is a defined void id, not counted
    raw16 = np.array([[3, 22, 23, 65535]], dtype=np.uint16)
    out, outside = L.map_labels(raw16, L.SYNTHIA_LUT_16, L.MAX_SYNTHIA_ID)
    assert out.tolist() == [[0, 255, 255, 255]] and outside == 2


def test_colorize_and_class_set_errors():
    assert L.colorize(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[[128, 64, 128], [0, 0, 0]]]
    assert L.colorize(np.array([[9]], dtype=np.uint8), 16).tolist() == [[list(PALETTE[10])]]  # 16-class sky
    with pytest.raises(ValueError, match="17"):
        L.class_names(17)
    with pytest.raises(ValueError, match="17"):
        L.palette(17)
