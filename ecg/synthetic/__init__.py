"""A built-in synthetic ECG set whose diagnoses are caused by the signal: a heart-vector (dipole) model with
a rhythm model, 26 diagnoses each made by its mechanism, and realistic recording nuisances.

    from ecg.synthetic import generate, load_synthetic, SYNTHETIC_CLASSES
    data = load_synthetic(2000, seed=0)          # made once, then read from the cache
"""
from ecg.synthetic.cache import load_synthetic
from ecg.synthetic.diagnoses import RHYTHM_CLASSES, SYNTHETIC_CLASSES
from ecg.synthetic.generate import generate

__all__ = ["generate", "load_synthetic", "SYNTHETIC_CLASSES", "RHYTHM_CLASSES"]
