"""The committed stubs must be exactly what `make proto` generates from the committed .proto files."""

from ferret.proto import generate


def test_committed_stubs_match_the_protos(tmp_path):
    fresh = generate.generate(tmp_path)
    assert fresh, "generator wrote nothing"
    committed_dir = generate.API_DIR
    stale = []
    for path in fresh:
        committed = committed_dir / path.name
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(path.name)
    extra = {p.name for p in committed_dir.iterdir() if p.name.endswith(generate.GENERATED_SUFFIXES)} - {
        p.name for p in fresh
    }
    assert not stale, f"stale generated stubs {stale}: run `make proto` and commit the result"
    assert not extra, f"generated stubs without a .proto {sorted(extra)}: delete them"


def test_every_proto_has_stubs_and_imports_resolve(tmp_path):
    import importlib

    for proto in generate.proto_files():
        stem = proto.stem
        for suffix in ("_pb2", "_pb2_grpc"):
            module = importlib.import_module(f"ferret.proto.ferret.v1.{stem}{suffix}")
            assert module.__name__.endswith(suffix)
        text = (generate.API_DIR / f"{stem}_pb2_grpc.py").read_text()
        assert "from ferret.v1 import" not in text
