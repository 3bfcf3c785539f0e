"""Generate Python protobuf / gRPC code (with .pyi stubs) from protos/.

Generated code is never committed: `make proto` and the package build
(`pip install .`, see setup.py) both call `generate()`.

A proto under protos/npanel/<pkg>/... imports as npanel.<pkg>...; because the
import package `npanel` is the folder services/, its generated modules are
placed under services/<pkg>/....

Protos of other projects keep their proto package (the wire names) but get a
Python home inside npanel through protoc's virtual paths: protos/flagd/... (the
OpenFeature flagd protocol, proto package flagd.evaluation.v1) is generated as
npanel.openfeature.... That avoids a second top-level Python package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
SERVICES = ROOT / "services"
# Folder under protos/ -> the virtual path protoc gives its files (= Python package).
VIRTUAL_ROOTS = {"npanel": "npanel", "flagd": "npanel/openfeature"}


def _plugin(name: str) -> str:
    """Locate a protoc plugin installed next to this interpreter."""
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"protoc plugin {name} not found: pip install mypy-protobuf")
    return found


def _protoc(out: Path, folder: str, virtual: str) -> None:
    import google.api  # googleapis-common-protos: google/api/*.proto (http annotations)
    import grpc_tools  # the build dependency that ships protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = Path(google.api.__path__[0]).parent.parent
    disk = PROTO_ROOT / folder
    protos = [f"{virtual}/{p.relative_to(disk)}" for p in sorted(disk.rglob("*.proto"))]
    args = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{virtual}={disk}", f"-I{PROTO_ROOT}", f"-I{well_known}", f"-I{googleapis}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        # mypy-protobuf's stubs, not protoc's --pyi_out: those fail mypy --strict.
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}", f"--mypy_out=quiet:{out}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_grpc_out=quiet:{out}",
        *protos,
    ]
    subprocess.run(args, check=True)


def generate() -> list[Path]:
    """Generate every proto and place the modules; return the files written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for folder, virtual in VIRTUAL_ROOTS.items():
            if (PROTO_ROOT / folder).is_dir():
                _protoc(out, folder, virtual)
        for src in (out / "npanel").rglob("*"):
            if src.is_file():
                target = SERVICES / src.relative_to(out / "npanel")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                written.append(target)
    return written


if __name__ == "__main__":
    files = generate()
    print(f"generated {len(files)} files from {PROTO_ROOT.relative_to(ROOT)}/")
