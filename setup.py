"""Build script for the one compiled piece: the CLF layer walker (see _layerwalk.c).

Everything else is declared in pyproject.toml. The extension is optional: where no C
compiler is available the package installs without it and the reader decodes every
layer with its general Python code (correct, 2-3x slower to read a file: bench/parse.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clf_analysis.clf._layerwalk",
            sources=["src/clf_analysis/clf/_layerwalk.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit"],
            optional=True,
        )
    ]
)
