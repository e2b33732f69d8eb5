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


def _filled(message_class, depth: int = 0):
    """A message of `message_class` with every field set to a non-default value (nested ones to depth 2), so that
    a round trip that dropped or mangled a field would differ."""
    from google.protobuf.descriptor import FieldDescriptor as F
    from google.protobuf.message_factory import GetMessageClass

    scalars = {F.CPPTYPE_BOOL: True, F.CPPTYPE_STRING: "x", F.CPPTYPE_DOUBLE: 1.5, F.CPPTYPE_FLOAT: 2.5,
               F.CPPTYPE_INT32: 3, F.CPPTYPE_INT64: 4, F.CPPTYPE_UINT32: 5, F.CPPTYPE_UINT64: 6}
    message = message_class()
    for field in message_class.DESCRIPTOR.fields:
        if field.cpp_type == F.CPPTYPE_MESSAGE:
            if depth >= 2 or field.message_type.GetOptions().map_entry:  # maps: covered by their entry types
                continue
            value = _filled(GetMessageClass(field.message_type), depth + 1)
            if field.is_repeated:
                getattr(message, field.name).append(value)
            else:
                getattr(message, field.name).CopyFrom(value)
            continue
        if field.cpp_type == F.CPPTYPE_ENUM:
            value = field.enum_type.values[-1].number
        elif field.type == F.TYPE_BYTES:
            value = b"\x01\x02"
        else:
            value = scalars[field.cpp_type]
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def test_every_message_type_pickles_and_round_trips():
    """Ray Serve's gRPC proxy pickles requests and responses between proxy and replicas: pickle finds a class by
    its `__module__`, which must be the importable `ferret.proto.ferret.v1.x_pb2`, not protoc's `ferret.v1.x_pb2`."""
    import importlib
    import pickle

    from google.protobuf.message_factory import GetMessageClass

    checked = 0
    for proto in generate.proto_files():
        module = importlib.import_module(f"ferret.proto.ferret.v1.{proto.stem}_pb2")
        pending = list(module.DESCRIPTOR.message_types_by_name.values())
        while pending:
            descriptor = pending.pop()
            pending.extend(descriptor.nested_types)
            message_class = GetMessageClass(descriptor)
            assert message_class.__module__ == module.__name__, descriptor.full_name
            message = _filled(message_class)
            assert message.ByteSize() > 0 or not message_class.DESCRIPTOR.fields
            restored = pickle.loads(pickle.dumps(message))
            assert type(restored) is message_class and restored == message, descriptor.full_name
            checked += 1
    assert checked > 50, f"only {checked} message types found"
