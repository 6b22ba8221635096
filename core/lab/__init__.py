"""The Objective lab: train small backbones under different objectives, stored as runs and used as `lab:<run id>` encoders."""
