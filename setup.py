"""Ships the top-level product data (benchmarks/, reports/templates/, the results schema)
inside the wheel.

They live at the repository's top level so people find them; the build copies them to
auditor/_data/ so an installed auditor carries them (auditor.resources finds either place).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = {"benchmarks": "benchmarks", "templates": "reports/templates"}
DATA_FILES = {"results.schema.json": "docs/results.schema.json"}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).parent
        for name, source in DATA_DIRS.items():
            target = Path(self.build_lib) / "auditor" / "_data" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(root / source, target)
        for name, source in DATA_FILES.items():
            shutil.copyfile(root / source, Path(self.build_lib) / "auditor" / "_data" / name)


setup(cmdclass={"build_py": BuildWithData})
