"""Generate Python protobuf / gRPC code (with .pyi stubs) from protos/.

Generated code is never committed: `make proto` and the package build
(`pip install .`, see setup.py) both call `generate()`.

A proto under protos/npanel/<pkg>/... imports as npanel.<pkg>...; because the
import package `npanel` is the folder services/, its generated modules are
placed under services/<pkg>/....
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
# Top-level proto folder -> folder that holds that import package.
PLACEMENT = {"npanel": ROOT / "services"}


def _plugin(name: str) -> str:
    """Locate a protoc plugin installed next to this interpreter."""
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"protoc plugin {name} not found: pip install mypy-protobuf")
    return found


def _protoc(out: Path, protos: list[Path]) -> None:
    import grpc_tools  # the build dependency that ships protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}", f"-I{well_known}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_grpc_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    subprocess.run(args, check=True)


def generate() -> list[Path]:
    """Generate every proto and place the modules; return the files written."""
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _protoc(out, protos)
        for top, dest in PLACEMENT.items():
            for src in (out / top).rglob("*"):
                if src.is_file():
                    target = dest / src.relative_to(out / top)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, target)
                    written.append(target)
    return written


if __name__ == "__main__":
    files = generate()
    print(f"generated {len(files)} files from {PROTO_ROOT.relative_to(ROOT)}/")
