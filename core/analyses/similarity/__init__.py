"""Representational similarity between representations of the same items (docs/science.md §8).

measures: the measures (RSA variants, linear / RBF / debiased CKA, Procrustes, mutual k-NN, CKNNA) over
prepared representations; given_rdms: representations given as RDMs only (RSA only); matrices: `compare` (all
pairs, layer × layer, vs a reference) with bootstrap CIs, paired tests, controls, noise ceilings and measure
agreement; store: matrices on disk.
"""
from core.analyses.similarity.matrices import (CONTROLS, NoiseCeiling, PairedTest, SimilarityMatrix, compare,
                                               controls, fingerprint, measure_agreement, noise_ceiling, paired_test,
                                               percentile_interval, random_rotation)
from core.analyses.similarity.measures import (MEASURES, RDM_MEASURES, Measure, PreparedRepresentation,
                                               SimilaritySettings, prepare, similarity, validate_features)
from core.analyses.similarity.store import MATRICES_FOLDER, SimilarityStore, matrix_key

__all__ = ["CONTROLS", "MATRICES_FOLDER", "MEASURES", "RDM_MEASURES", "Measure", "NoiseCeiling", "PairedTest", "PreparedRepresentation",
           "SimilarityMatrix", "SimilaritySettings", "SimilarityStore", "compare", "controls", "fingerprint",
           "matrix_key", "measure_agreement", "noise_ceiling", "paired_test", "percentile_interval", "prepare",
           "random_rotation", "similarity", "validate_features"]
