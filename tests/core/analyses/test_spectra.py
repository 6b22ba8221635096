"""Known answers for effective dimensionality and the eigenspectrum's power-law fit (docs/science.md §6)."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.spectra import effective_dimensionality, eigenspectrum, power_law_alpha, spectrum, spectrum_tables

RNG = np.random.default_rng(0)


def test_effective_dimensionality_of_isotropic_and_rank_one_data() -> None:
    assert effective_dimensionality(RNG.normal(size=(20_000, 5))) == pytest.approx(5.0, abs=0.1)
    line = np.outer(RNG.normal(size=300), RNG.normal(size=8))
    assert effective_dimensionality(line) == pytest.approx(1.0, abs=1e-6)
    wide = RNG.normal(size=(30, 200))  # Gram path (N < D) agrees with the covariance spectrum
    covariance_eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(wide.T, bias=True)), 0, None)
    expected = covariance_eigenvalues.sum() ** 2 / (covariance_eigenvalues ** 2).sum()
    assert effective_dimensionality(wide) == pytest.approx(expected, rel=1e-6)


def test_power_law_alpha_recovers_the_exponent() -> None:
    ranks = np.arange(1, 1001)
    assert power_law_alpha(ranks ** -1.2)[0] == pytest.approx(1.2, abs=1e-9)
    samples = RNG.normal(size=(4000, 300)) * np.sqrt(np.arange(1, 301) ** -1.2)  # covariance spectrum n^-1.2
    assert power_law_alpha(eigenspectrum(samples))[0] == pytest.approx(1.2, abs=0.05)


def test_spectrum_tables_hold_every_eigenvalue_and_fit_by_name() -> None:
    features = {"a": RNG.normal(size=(40, 6)), "b": RNG.normal(size=(30, 50))}
    spectra = {name: spectrum(values) for name, values in features.items()}
    eigenvalues, fits = spectrum_tables(spectra)
    assert eigenvalues.groupby("encoder", sort=False).size().to_dict() == {"a": 6, "b": 29}
    np.testing.assert_array_equal(eigenvalues.loc[eigenvalues["encoder"] == "b", "eigenvalue"],
                                  eigenspectrum(features["b"]))
    assert fits["encoder"].tolist() == ["a", "b"]
    assert fits.loc[1, "alpha"] == spectra["b"].alpha
    assert np.isnan(fits.loc[0, "alpha"])  # a fit needs ranks 11 .. 13 at least: "a" has 6 eigenvalues
