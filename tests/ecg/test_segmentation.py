"""The "FxS" segmentation form, written and read in one place (ecg.segmentation)."""
import pytest

from ecg.segmentation import format_segmentation, same_steps, split_segmentation


def test_split_and_format_are_inverse() -> None:
    assert split_segmentation("50x100") == (50, 100) and split_segmentation(" 500 ") == (500, None)
    assert format_segmentation(*split_segmentation("100x50")) == "100x50"
    with pytest.raises(ValueError, match="must be 'FxS'"):
        split_segmentation("0x10")


@pytest.mark.parametrize("text, to_length, expected", [
    ("500x10", 2500, "250x10"),   # ten 1-s steps at 250 Hz
    ("50x100", 1000, "10x100"),   # one hundred 0.1-s steps at 100 Hz
    ("500", 2500, "250x10"),      # "F" alone: its steps follow from the length
    ("100x50", 1030, None),       # 50 steps do not divide 1,030 samples
])
def test_same_steps_at_another_length(text, to_length, expected) -> None:
    assert same_steps(text, 5000, to_length) == expected
