"""Generate the Python gRPC stubs of every `.proto` in `ferret/proto/ferret/v1/`.

    python -m ferret.proto.generate            # rewrite the committed stubs next to the protos
    python -m ferret.proto.generate --out DIR  # write them under DIR instead (the staleness test)

protoc names modules after the proto include path (`ferret.v1.x_pb2`); the stubs live inside the
`ferret.proto` package, so two things are rewritten to the importable name `ferret.proto.ferret.v1.x_pb2`:
the imports between stubs (`from ferret.v1 import x_pb2`), and the module name the message classes are
registered under (`BuildTopDescriptorsAndMessages(DESCRIPTOR, 'ferret.v1.x_pb2', ...)`), which becomes
their `__module__`: pickle finds a class by it, and Ray Serve's gRPC proxy pickles requests to replicas.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
API_DIR = PROTO_ROOT / "ferret" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

_PROTOC_IMPORT = re.compile(r"^from ferret\.v1 import ", re.MULTILINE)
_PROTOC_MODULE_NAME = re.compile(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')ferret\.v1\.")


def proto_files() -> list[Path]:
    return sorted(API_DIR.glob("*.proto"))


def generate(out_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc over every API proto, writing `ferret/v1/*_pb2*.py[i]` under `out_root`; returns the files."""
    import grpc_tools
    from grpc_tools import protoc

    protos = proto_files()
    if not protos:
        raise RuntimeError(f"no .proto files under {API_DIR}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(p.name for p in protos)}")
    written = sorted(p for p in (out_root / "ferret" / "v1").iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    for path in written:
        text = path.read_text()
        fixed = _PROTOC_IMPORT.sub("from ferret.proto.ferret.v1 import ", text)
        fixed = _PROTOC_MODULE_NAME.sub(r"\1ferret.proto.ferret.v1.", fixed)
        if fixed != text:
            path.write_text(fixed)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="root to write ferret/v1/*_pb2*.py under")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
