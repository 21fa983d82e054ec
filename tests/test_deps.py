"""Dependency snapshot: one small notebook per detection case (issue 3, "Detection must handle").

Most cases run against this test interpreter's own environment (numpy, pandas, scikit-learn,
pillow, pyyaml, google-cloud-compute, protobuf are installed here). Cases that need particular
installs (VCS, editable, +cpu builds, cv2/bs4/skimage, azure namespaces, conda) use a real
virtual environment made with uv into which distributions are recorded the way an installer
records them (dist-info with METADATA/RECORD/direct_url.json); detection reads that metadata
through the other interpreter, never importing anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from offload.errors import NotebookError, UsageError
from offload.snapshot.deps import EnvSpec, Requirement, render, snapshot


def write_nb(path: Path, *cells: str) -> Path:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def names(env: EnvSpec, optional: bool = False) -> set[str]:
    return {r.name for r in env.requirements if r.optional == optional}


def req(env: EnvSpec, name: str) -> Requirement:
    return next(r for r in env.requirements if r.name == name)


# --------------------------------------------------------------------------------------------
# cells, depth, magics


def test_imports_at_any_depth_in_every_cell(tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "import numpy as np",
        "def load():\n    import pandas as pd\n    return pd\n",
        "class Model:\n    def fit(self):\n        from sklearn.linear_model import Ridge\n",
        "if True:\n    for i in range(2):\n        with open('x') as f:\n            import yaml\n",
    )
    env = snapshot(nb)
    assert {"numpy", "pandas", "scikit-learn", "pyyaml"} <= names(env)
    assert "cell 3" in req(env, "scikit-learn").reasons[0]
    assert not env.unresolved


def test_cell_that_does_not_parse_keeps_the_others(tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "import numpy",
        "print 'python 2'\nimport pandas\nfrom PIL import (\n    Image,\n)",
        "import yaml",
    )
    env = snapshot(nb)
    assert {"numpy", "pandas", "pillow", "pyyaml"} <= names(env)
    assert any("cell 2 does not parse" in n for n in env.notes)


def test_magics_and_shell_lines(tmp_path):
    (tmp_path / "helper.py").write_text("import pandas\n")
    nb = write_nb(
        tmp_path / "a.ipynb",
        "%pip install -q --upgrade git+https://github.com/acme/tool.git@v1 'requests>=2'\n"
        "!pip install --no-deps -i https://example.invalid/simple pyyaml",
        "%matplotlib inline\n%load_ext autoreload\n%autoreload 2\nfiles = !ls\n%time import numpy",
        "%run helper.py",
        "%%writefile mymod.py\nimport sklearn\n",
        "import mymod\nx = 1\nx?",
        "%%bash\necho hi\npip install pillow\n",
        "%%html\n<b>import not_a_module</b>",
    )
    env = snapshot(nb)
    req_names = names(env)
    assert {"numpy", "pandas", "scikit-learn", "matplotlib"} <= req_names
    # the %run file ships and its imports count; the %%writefile module is local, not a package
    assert "helper.py" in env.local_files
    assert any(m["module"] == "mymod" and m["kind"] == "written" for m in env.local_modules)
    assert not env.unresolved
    # pip lines are read (with flags and VCS URLs), not executed; unused ones are optional
    opt = {r.name: r for r in env.requirements if r.optional}
    assert opt["tool"].spec == "tool @ git+https://github.com/acme/tool.git@v1"
    assert "requests" in opt and "pillow" in opt
    assert "pip install in cell 1" in req(env, "pyyaml").reasons[-1] or any(
        "pip install" in r for r in req(env, "pyyaml").reasons
    )
    assert "autoreload" in env.neutral
    assert any("%load_ext" not in r for r in req(env, "matplotlib").reasons)


def test_load_ext_of_a_distribution(fake_env, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", "%load_ext line_profiler")
    env = snapshot(nb, python=fake_env)
    assert "line-profiler" in names(env)
    assert req(env, "line-profiler").reasons == ["%load_ext line_profiler in cell 1"]


def test_dynamic_imports_with_literal_strings(tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "import importlib\nmod = importlib.import_module('yaml')\n"
        "from importlib import import_module\nimport_module('sklearn.svm')\n"
        "img = __import__('PIL')\nname = 'x'\nimportlib.import_module(name)",
    )
    env = snapshot(nb)
    assert {"pyyaml", "scikit-learn", "pillow"} <= names(env)
    assert any("dynamically" in r for r in req(env, "pyyaml").reasons)


def test_try_except_importerror_is_optional(tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "try:\n    import pandas\nexcept ImportError:\n    pandas = None",
        "try:\n    import not_installed_accel\nexcept (ImportError, OSError):\n    pass",
        "try:\n    import numpy\nexcept ImportError:\n    import yaml as numpy",
        "import numpy",
    )
    env = snapshot(nb)
    assert "pandas" in names(env, optional=True)
    assert "numpy" in names(env)  # imported unguarded elsewhere: required
    assert "pyyaml" in names(env)  # the fallback in the handler is not optional
    assert not env.unresolved  # the missing optional one is a note, not a blocker
    assert any("not_installed_accel" in n for n in env.notes)
    assert "pandas" not in " ".join(env.requirement_lines())
    assert any(ln.startswith("pandas==") for ln in env.requirement_lines(include_optional=True))


# --------------------------------------------------------------------------------------------
# local modules


def test_local_package_followed_recursively(tmp_path):
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("from .data import load\n")
    (tmp_path / "utils" / "data.py").write_text("def load():\n    import pandas\n")
    (tmp_path / "utils" / "vocab.txt").write_text("a b c")
    (tmp_path / "helpers.py").write_text("import yaml\nfrom utils import data\n")
    nb = write_nb(tmp_path / "a.ipynb", "import helpers\nfrom utils.data import load")
    env = snapshot(nb)
    assert {"pandas", "pyyaml"} <= names(env)
    assert {"helpers.py", "utils/__init__.py", "utils/data.py", "utils/vocab.txt"} <= set(
        env.local_files
    )
    assert "a.ipynb" not in env.local_files
    assert any("utils/data.py" in r for r in req(env, "pandas").reasons)


def test_local_module_shadows_a_public_package(tmp_path):
    # a project file named like a PyPI package must never become that package
    (tmp_path / "requests.py").write_text("import numpy\n")
    (tmp_path / "helper").mkdir()
    (tmp_path / "helper" / "tools.py").write_text("import yaml\n")  # namespace dir, no __init__
    nb = write_nb(tmp_path / "a.ipynb", "import requests\nfrom helper import tools")
    env = snapshot(nb)
    assert "requests" not in names(env) | names(env, optional=True)
    assert {"numpy", "pyyaml"} <= names(env)
    assert {"requests.py", "helper/tools.py"} <= set(env.local_files)


def test_sys_path_additions_and_project_root(tmp_path):
    root = tmp_path / "proj"
    (root / "lib" / "mylib").mkdir(parents=True)
    (root / "lib" / "mylib" / "__init__.py").write_text("import sklearn\n")
    (root / "shared").mkdir()
    (root / "shared" / "__init__.py").write_text("import yaml\n")
    (root / "notebooks" / "exp").mkdir(parents=True)
    nb = write_nb(
        root / "notebooks" / "exp" / "a.ipynb",
        "import os, sys\nsys.path.insert(0, os.path.abspath('../../lib'))\nimport mylib",
        "import shared",  # at the project root, found without a sys.path line
    )
    env = snapshot(nb, project_root=root)
    assert {"scikit-learn", "pyyaml"} <= names(env)
    assert {"lib/mylib/__init__.py", "shared/__init__.py"} <= set(env.local_files)
    # the default root is found: the sys.path literal and the repo's package widen it (issue 16)
    env_default = snapshot(nb)
    assert Path(env_default.project_root) == root.resolve() and not env_default.unresolved
    assert {"lib/mylib/__init__.py", "shared/__init__.py"} <= set(env_default.local_files)
    # a root given too narrow: the package cannot ship; reported, not guessed
    env2 = snapshot(nb, project_root=nb.parent)
    assert [u["module"] for u in env2.unresolved] == ["mylib", "shared"]
    assert "outside the project root" in env2.unresolved[0]["hint"]


def test_run_of_another_notebook(tmp_path):
    write_nb(tmp_path / "setup.ipynb", "import yaml")
    nb = write_nb(tmp_path / "a.ipynb", "%run setup.ipynb", "%run ./missing.py")
    env = snapshot(nb)
    assert "pyyaml" in names(env)
    assert "setup.ipynb" in env.local_files
    assert [u["module"] for u in env.unresolved] == ["%run ./missing.py"]


# --------------------------------------------------------------------------------------------
# import name -> distribution


def test_renamed_imports_and_namespace_packages(tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "import sklearn\nfrom PIL import Image\nimport yaml",
        "from google.cloud import compute_v1\nimport google.protobuf",
    )
    env = snapshot(nb)
    got = names(env)
    assert {"scikit-learn", "pillow", "pyyaml", "google-cloud-compute", "protobuf"} <= got
    assert not {"sklearn", "pil", "yaml", "google"} & got


def test_fake_env_aliases_namespaces_and_stubs(fake_env, tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        "import cv2\nfrom bs4 import BeautifulSoup\nfrom skimage import io",
        "from azure.storage.blob import BlobClient\nimport azure.core",
        "from google.cloud import storage",
    )
    env = snapshot(nb, python=fake_env)
    got = names(env)
    assert got == {
        "opencv-python",
        "beautifulsoup4",
        "scikit-image",
        "azure-storage-blob",
        "azure-core",
        "google-cloud-storage",
    }
    assert "types-opencv" not in got  # a typing stub never owns a module


def test_vcs_editable_and_local_label(fake_env, tmp_path):
    proj = fake_env.parent.parent.parent / "proj"  # where the fixture put the editable source
    nb = write_nb(proj / "a.ipynb", "import mylib\nimport torch\nimport editpkg")
    env = snapshot(nb, python=fake_env)
    mylib = req(env, "mylib")
    assert mylib.source == "vcs"
    assert mylib.spec == "mylib @ git+https://github.com/acme/mylib.git@" + "a" * 40
    torch = req(env, "torch")
    assert torch.version == "2.3.0+cpu" and torch.local_label == "+cpu"
    assert torch.spec == "torch==2.3.0"  # the remote picks the build for its accelerator
    assert any("local build labels dropped" in n for n in env.notes)
    ed = req(env, "editpkg")
    assert ed.source == "editable" and ed.spec == "-e ./libs/editpkg_src"
    assert "libs/editpkg_src/editpkg/__init__.py" in env.local_files
    assert "pandas-in-editable" in names(env)  # its own imports count


def test_conda_environment_is_reported(fake_env, tmp_path):
    conda_meta = fake_env.parent.parent / "conda-meta"
    conda_meta.mkdir(exist_ok=True)
    try:
        nb = write_nb(tmp_path / "a.ipynb", "import cv2")
        env = snapshot(nb, python=fake_env)
        assert env.conda
        assert any("conda environment" in n for n in env.notes)
    finally:
        conda_meta.rmdir()


def test_conda_only_package_read_from_conda_meta(fake_env, tmp_path):
    """A package conda installed without Python metadata (no dist-info) resolves through
    conda-meta's file list, under its PyPI name (python-graphviz -> graphviz); conda's non-Python
    packages (the graphviz C program) are never taken for distributions (issue 16)."""
    import shutil

    prefix = fake_env.parent.parent
    site = next(prefix.glob("lib/python*/site-packages"))
    conda_meta = prefix / "conda-meta"
    conda_meta.mkdir(exist_ok=True)
    (site / "graphviz").mkdir()
    (site / "graphviz" / "__init__.py").write_text("")
    rel = site.relative_to(prefix).as_posix()
    (conda_meta / "python-graphviz-0.20.1-pyh.json").write_text(json.dumps(
        {"name": "python-graphviz", "version": "0.20.1", "files": [f"{rel}/graphviz/__init__.py"]}))
    (conda_meta / "graphviz-9.0.0-h.json").write_text(json.dumps(
        {"name": "graphviz", "version": "9.0.0", "files": ["bin/dot", "lib/libgvc.so"]}))
    try:
        nb = write_nb(tmp_path / "a.ipynb", "import graphviz")
        env = snapshot(nb, python=fake_env)
        assert not env.unresolved
        assert req(env, "graphviz").spec == "graphviz==0.20.1"
    finally:
        shutil.rmtree(conda_meta)
        shutil.rmtree(site / "graphviz")


def test_kernel_modules_merged(tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", "import yaml\nexec('import pandas')")
    kernel = ["yaml", "pandas", "pandas.core", "numpy", "json", "zmq", "IPython", "ipykernel"]
    env = snapshot(nb, kernel_modules=kernel)
    assert req(env, "pandas").reasons == ["loaded in the live kernel (pandas)"]
    got = names(env)
    assert "numpy" not in got  # loaded because pandas was
    assert not {"pyzmq", "ipykernel", "ipython"} & got  # the kernel's own machinery


# --------------------------------------------------------------------------------------------
# declared dependency files


def test_requirements_txt_used_and_reconciled(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        "numpy>=1.20\njupyter\nnot-installed-thing==1.2  # declared by the user\n"
    )
    nb = write_nb(tmp_path / "a.ipynb", "import numpy\nimport pandas\nimport not_installed_thing")
    env = snapshot(nb)
    assert env.source == "requirements.txt"
    assert req(env, "numpy").declared_in == ["requirements.txt"]
    # declared and imported but not installed here: the user named it, so it is used as declared
    nit = req(env, "not-installed-thing")
    assert nit.spec == "not-installed-thing==1.2" and not nit.optional
    # declared but never imported: reported, not installed by default
    assert "jupyter" in names(env, optional=True)
    # imported but missing from the file: reported
    assert any("do not list pandas" in n for n in env.notes)
    assert not env.unresolved


def test_pyproject_overrides_and_uv_lock(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "0"\ndependencies = ["pyyaml"]\n'
        '[tool.offload.deps]\nmap = { internal_sdk = "acme-internal-sdk" }\n'
        'ignore = ["ignored_mod"]\nadd = ["tqdm==4.66.0"]\n'
    )
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "pyyaml"\nversion = "6.0.1"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
    )
    nb = write_nb(tmp_path / "a.ipynb", "import yaml\nimport internal_sdk\nimport ignored_mod")
    env = snapshot(nb)
    assert req(env, "pyyaml").spec == "pyyaml==6.0.1"  # the lock wins over what is installed
    assert req(env, "acme-internal-sdk").spec == "acme-internal-sdk"
    assert req(env, "tqdm").spec == "tqdm==4.66.0"
    assert not env.unresolved


def test_environment_yml(tmp_path):
    (tmp_path / "environment.yml").write_text(
        "name: x\ndependencies:\n  - python=3.11\n  - gdal=3.8.0\n  - pip\n  - pip:\n    - pyyaml\n"
    )
    nb = write_nb(tmp_path / "a.ipynb", "from osgeo import gdal\nimport yaml")
    env = snapshot(nb)
    assert req(env, "gdal").spec == "gdal==3.8.0"
    assert req(env, "gdal").declared_in == ["environment.yml"]
    assert env.source == "environment.yml"


def test_unresolved_import_is_reported_never_guessed(tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", "import totally_unknown_pkg_xyz\nimport numpy")
    env = snapshot(nb)
    assert [u["module"] for u in env.unresolved] == ["totally_unknown_pkg_xyz"]
    assert "tool.offload.deps" in env.unresolved[0]["hint"]
    all_names = names(env) | names(env, optional=True)
    assert not any("unknown" in n for n in all_names)


# --------------------------------------------------------------------------------------------
# model, rendering, errors


def test_roundtrip_hash_and_formats(tmp_path):
    (tmp_path / "util.py").write_text("import yaml\n")
    nb = write_nb(tmp_path / "a.ipynb", "import numpy\nimport util")
    env = snapshot(nb)
    d = json.loads(json.dumps(env.to_dict()))
    back = EnvSpec.from_dict(d)
    assert back.to_dict() == d and back.env_hash == env.env_hash
    back.requirements[0].reasons.append("another reason")
    assert back.env_hash == env.env_hash  # reasons do not change what is installed
    back.requirements[0].spec = "numpy==0.0.1"
    assert back.env_hash != env.env_hash
    text = render(env)
    assert "numpy==" in text and "util.py" in text and "imported in cell 1" in text
    reqs = render(env, "requirements")
    assert any(ln.startswith("numpy==") for ln in reqs.splitlines())
    assert "dependencies = [" in render(env, "pyproject")
    assert json.loads(render(env, "json"))["python"] == env.python
    with pytest.raises(UsageError):
        render(env, "xml")


def test_bad_inputs(tmp_path):
    with pytest.raises(NotebookError, match="not found"):
        snapshot(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match="not valid JSON"):
        snapshot(bad)
    nb = write_nb(tmp_path / "a.ipynb", "import numpy")
    with pytest.raises(UsageError, match="interpreter not found"):
        snapshot(nb, python=tmp_path / "nope" / "python")
    with pytest.raises(UsageError, match="not inside the project root"):
        snapshot(nb, project_root=Path(sys.prefix))


def test_in_memory_notebook_is_read_from_memory(tmp_path):
    (tmp_path / "helper.py").write_text("import yaml\n")
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell("import numpy\nimport helper")]
    env = snapshot("draft.ipynb", nb=nb, project_root=tmp_path)
    assert {"numpy", "pyyaml"} <= names(env)
    assert env.local_files == ["helper.py"]
    assert not (tmp_path / "draft.ipynb").exists()
    # a file at that path is not read: the notebook in memory is the one that runs
    write_nb(tmp_path / "draft.ipynb", "import pandas")
    assert "pandas" not in names(snapshot(tmp_path / "draft.ipynb", nb=nb, project_root=tmp_path))
    with pytest.raises(NotebookError, match="not a notebook name"):
        snapshot("draft.py", nb=nb, project_root=tmp_path)
    with pytest.raises(UsageError, match="not inside the project root"):
        snapshot(tmp_path.parent / "x.ipynb", nb=nb, project_root=tmp_path)


# --------------------------------------------------------------------------------------------
# a real second environment with installer-recorded metadata


def _dist(
    site: Path,
    name: str,
    version: str,
    files: dict[str, str],
    *,
    direct_url=None,
    requires: list[str] | None = None,
    record_extra: list[str] | None = None,
) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    for r in requires or []:
        meta += f"Requires-Dist: {r}\n"
    (info / "METADATA").write_text(meta)
    (info / "INSTALLER").write_text("pip\n")
    rec = []
    for rel, content in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        rec.append(f"{rel},,")
    rec += record_extra or []
    rec += [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    if direct_url:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
        rec.append(f"{info.name}/direct_url.json,,")
    (info / "RECORD").write_text("\n".join(rec) + "\n")


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory) -> Path:
    """A uv venv whose site-packages holds distributions recorded as installers record them."""
    base = tmp_path_factory.mktemp("fakeenv")
    venv = base / "venv"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv) if uv.exists() else "uv", "venv", "-q", "--python", sys.executable, str(venv)],
        check=True,
    )
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    _dist(site, "opencv-python", "4.9.0.80", {"cv2/__init__.py": "", "cv2/data/__init__.py": ""})
    _dist(site, "types-opencv", "0.1", {"cv2/__init__.pyi": ""})
    _dist(site, "beautifulsoup4", "4.12.3", {"bs4/__init__.py": ""})
    _dist(site, "scikit-image", "0.22.0", {"skimage/__init__.py": "", "skimage/io/__init__.py": ""})
    _dist(site, "azure-core", "1.30.0", {"azure/core/__init__.py": ""})
    _dist(
        site,
        "azure-storage-blob",
        "12.19.0",
        {"azure/storage/blob/__init__.py": ""},
        requires=["azure-core>=1.28"],
    )
    _dist(site, "google-cloud-storage", "2.14.0", {"google/cloud/storage/__init__.py": ""})
    _dist(site, "protobuf", "4.25.0", {"google/protobuf/__init__.py": ""})
    _dist(site, "line-profiler", "4.1.2", {"line_profiler/__init__.py": ""})
    _dist(site, "torch", "2.3.0+cpu", {"torch/__init__.py": ""})
    _dist(
        site,
        "mylib",
        "0.3.0",
        {"mylib/__init__.py": ""},
        direct_url={
            "url": "https://github.com/acme/mylib.git",
            "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "main"},
        },
    )
    _dist(site, "pandas-in-editable", "1.0", {"pie/__init__.py": ""})
    src = base / "proj" / "libs" / "editpkg_src"
    (src / "editpkg").mkdir(parents=True)
    (src / "editpkg" / "__init__.py").write_text("import pie\n")
    _dist(
        site,
        "editpkg",
        "0.1",
        {"__editable__.editpkg-0.1.pth": str(src) + "\n"},
        direct_url={"url": src.as_uri(), "dir_info": {"editable": True}},
    )
    return py
