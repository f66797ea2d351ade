"""Builds xoscar_c._core against libxoscar, found (first match wins) through:

  XOSCAR_C_BUILD_DIR=/path/to/build   a CMake build tree of Xoscar-C (headers from its source tree, read from the
                                      tree's CMakeCache.txt; build/libxoscar.so)
  pkg-config xoscar                   an installed prefix (cmake --install build --prefix P; then
                                      PKG_CONFIG_PATH=P/lib/pkgconfig, or P is on pkg-config's default path)

The extension records the library's directory as its rpath, and the xoscar command next to it (Cluster.from_file),
in xoscar_c/_build_info.py."""
import os
import re
import shlex
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def _from_build_tree(build_dir):
    build_dir = os.path.abspath(build_dir)
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if not os.path.exists(cache):
        raise SystemExit(f"XOSCAR_C_BUILD_DIR={build_dir}: no CMakeCache.txt (build Xoscar-C there first)")
    src = None
    with open(cache) as f:
        for line in f:
            m = re.match(r"CMAKE_HOME_DIRECTORY:INTERNAL=(.*)", line.strip())
            if m:
                src = m.group(1)
    if not src or not os.path.exists(os.path.join(build_dir, "libxoscar.so")):
        raise SystemExit(f"XOSCAR_C_BUILD_DIR={build_dir}: no libxoscar.so or source tree (run scripts/build.sh)")
    return dict(include_dirs=[os.path.join(src, "include")], library_dirs=[build_dir], rpath=[build_dir],
                libraries=["xoscar"],
                extra_compile_args=[], xoscar_bin=os.path.join(build_dir, "cluster", "xoscar"))


def _from_pkg_config():
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", "xoscar"], text=True)
        libs = subprocess.check_output(["pkg-config", "--libs", "xoscar"], text=True)
        libdir = subprocess.check_output(["pkg-config", "--variable=libdir", "xoscar"], text=True).strip()
        prefix = subprocess.check_output(["pkg-config", "--variable=prefix", "xoscar"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("xoscar_c: libxoscar not found. Set XOSCAR_C_BUILD_DIR to a build tree, or install "
                         "Xoscar-C (cmake --install build --prefix P) and set PKG_CONFIG_PATH=P/lib/pkgconfig")
    inc = [a[2:] for a in shlex.split(cflags) if a.startswith("-I")]
    other = [a for a in shlex.split(cflags) if not a.startswith("-I")]
    ld = [a[2:] for a in shlex.split(libs) if a.startswith("-L")]
    lib = [a[2:] for a in shlex.split(libs) if a.startswith("-l")]
    libdir = os.path.realpath(libdir)
    return dict(include_dirs=inc, library_dirs=[libdir] + [os.path.realpath(d) for d in ld if os.path.realpath(d) != libdir],
                rpath=[libdir], libraries=lib or ["xoscar"], extra_compile_args=other,
                xoscar_bin=os.path.join(os.path.realpath(prefix), "bin", "xoscar"))


cfg = _from_build_tree(os.environ["XOSCAR_C_BUILD_DIR"]) if os.environ.get("XOSCAR_C_BUILD_DIR") else _from_pkg_config()


class BuildPy(build_py):
    """Writes _build_info.py: where the library and the xoscar command were at build time."""

    def run(self):
        super().run()
        path = os.path.join(self.build_lib, "xoscar_c", "_build_info.py")
        with open(path, "w") as f:
            f.write(f"XOSCAR_BIN = {cfg['xoscar_bin']!r}\nLIBRARY_DIRS = {cfg['library_dirs']!r}\n")


class BuildExt(build_ext):
    """Always rebuilds: an extension left in python/build by a build against another libxoscar looks up to date to
    setuptools (it compares only source times), and would keep that library's rpath."""

    def finalize_options(self):
        super().finalize_options()
        self.force = True


setup(
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt},
    ext_modules=[
        Extension(
            "xoscar_c._core",
            sources=["src/xoscar_c/_core.c"],
            include_dirs=cfg["include_dirs"],
            library_dirs=cfg["library_dirs"],
            libraries=cfg["libraries"],
            runtime_library_dirs=cfg["rpath"],
            extra_compile_args=["-std=c11", "-Wall", "-Wno-missing-field-initializers"] + cfg["extra_compile_args"],
        )
    ],
)
