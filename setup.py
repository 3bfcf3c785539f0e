"""Package build hook: generate protobuf code before modules are collected.

All metadata lives in pyproject.toml; this file only adds the generation step
so that `pip install .` and `pip wheel .` never depend on committed generated code.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))


class BuildWithProtos(build_py):
    def run(self) -> None:
        import protogen

        protogen.generate()
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
