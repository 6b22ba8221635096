"""A `lab:` spec names a run of the Objective lab by its id, never a path."""
import pytest

from core.encoders.specs import EncoderSpecError, parse_spec


@pytest.mark.parametrize("spec", ["lab:../../home/bob/run", "lab:..", "lab:a/b", "lab:"])
def test_a_lab_run_id_that_is_a_path_is_refused(spec):
    with pytest.raises(EncoderSpecError, match="run id"):
        parse_spec(spec)


def test_a_lab_run_id_parses():
    assert str(parse_spec("lab:clamp-resnet18-1a2b3c4d")) == "lab:clamp-resnet18-1a2b3c4d"
