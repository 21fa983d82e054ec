"""conda package names -> PyPI distribution names.

conda-forge names many Python packages differently from PyPI (``python-graphviz`` is PyPI's
``graphviz``, ``pytorch`` is ``torch``) and ships non-Python libraries under names that mean
something else on PyPI (conda's ``graphviz`` is the C program). This table maps the common ones;
``None`` marks a conda package that is not a Python distribution (never installed by pip). A name
not in the table is taken as the same on PyPI, which holds for most of conda-forge.
"""

from __future__ import annotations

from offload.snapshot.deps.model import canonicalize_name

__all__ = ["CONDA_TO_PYPI", "pypi_name"]

CONDA_TO_PYPI: dict[str, str | None] = {
    # renamed Python packages
    "pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch", "torchvision-cpu": "torchvision",
    "python-graphviz": "graphviz", "py-opencv": "opencv-python", "opencv": "opencv-python",
    "libopencv": None, "tensorflow-gpu": "tensorflow", "tensorflow-cpu": "tensorflow",
    "pytables": "tables", "py-xgboost": "xgboost", "py-xgboost-cpu": "xgboost", "py-xgboost-gpu": "xgboost",
    "py-lightgbm": "lightgbm", "lightgbm": "lightgbm", "py-catboost": "catboost",
    "python-dateutil": "python-dateutil", "dateutil": "python-dateutil", "pyyaml": "pyyaml", "yaml": None,
    "msgpack-python": "msgpack", "python-kaleido": "kaleido", "python-duckdb": "duckdb",
    "python-lmdb": "lmdb", "python-snappy": "python-snappy", "python-blosc": "blosc",
    "python-levenshtein": "levenshtein", "python-xxhash": "xxhash", "python-tzdata": "tzdata",
    "python-fastjsonschema": "fastjsonschema", "python-json-logger": "python-json-logger",
    "pyqt": "pyqt5", "pyqt5-sip": "pyqt5-sip", "qt": None, "pyside2": "pyside2",
    "ruamel_yaml": "ruamel-yaml", "ruamel.yaml": "ruamel-yaml", "backports.zoneinfo": "backports-zoneinfo",
    "gdal": "gdal", "libgdal": None, "poppler": None, "pygraphviz": "pygraphviz",
    "matplotlib-base": "matplotlib", "numpy-base": "numpy", "jupyterlab_widgets": "jupyterlab-widgets",
    "ipython_genutils": "ipython-genutils", "prompt_toolkit": "prompt-toolkit", "typing_extensions": "typing-extensions",
    "importlib_metadata": "importlib-metadata", "scikit-learn-intelex": "scikit-learn-intelex",
    "pillow-simd": "pillow-simd", "cupy": "cupy", "faiss-cpu": "faiss-cpu", "faiss-gpu": "faiss-gpu",
    "faiss": "faiss-cpu", "libfaiss": None, "pymc3": "pymc3", "r-base": None,
    # not Python distributions
    "python": None, "pip": None, "setuptools-scm": "setuptools-scm", "graphviz": None, "nodejs": None,
    "cudatoolkit": None, "cuda-toolkit": None, "cuda-version": None, "cudnn": None, "nccl": None,
    "pytorch-cuda": None, "pytorch-mutex": None, "cpuonly": None, "mkl": None, "mkl-service": "mkl-service",
    "blas": None, "libblas": None, "openblas": None, "libopenblas": None, "ffmpeg": None, "git": None,
    "make": None, "cmake": None, "compilers": None, "gcc": None, "gxx": None, "openjdk": None,
    "hdf5": None, "libnetcdf": None, "proj": None, "geos": None, "libspatialindex": None,
    "jpeg": None, "libpng": None, "zlib": None, "openssl": None, "ca-certificates": None, "certifi": "certifi",
    "r": None, "rust": None, "go": None, "pandoc": None, "texlive-core": None, "imagemagick": None,
    "sqlite": None, "libsqlite": None, "tk": None, "xz": None, "bzip2": None, "ncurses": None, "readline": None,
    "libffi": None, "libgcc-ng": None, "libstdcxx-ng": None, "_libgcc_mutex": None, "_openmp_mutex": None,
    "llvm-openmp": None, "intel-openmp": None, "tbb": None, "libxgboost": None, "liblightgbm": None,
}


def pypi_name(conda_name: str) -> str | None:
    """The PyPI distribution a conda package installs (canonical), or None when it is not one."""
    key = conda_name.strip().lower()
    if key in CONDA_TO_PYPI:
        hit = CONDA_TO_PYPI[key]
        return canonicalize_name(hit) if hit else None
    if key.startswith(("lib", "_")) and key not in ("libcst", "librosa", "libclang"):
        return None  # conda's shared libraries (libxml2, libcurl...): not Python distributions
    return canonicalize_name(key)
