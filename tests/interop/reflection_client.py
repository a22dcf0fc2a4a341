"""A gRPC server reflection client that knows nothing of rpcboot's services: it asks the server
(grpc.reflection v1alpha and v1, over grpcio) for its services and their descriptors, builds the
message types with the protobuf library's own descriptor pool, and calls a method it learned of
that way. The reflection messages are encoded and decoded by hand from their published field
numbers, so nothing here comes from rpcboot's emitted files.

    reflection_client.py GRPC_PORT TOKEN

The server requires a caller identity: without the bearer token TOKEN, reflection is refused.
"""
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def text_field(number, value):
    data = value.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def fields(data):
    """(number, value) pairs of a message: bytes for length-delimited fields, ints otherwise."""
    out, i = [], 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            value, i = data[i:i + length], i + length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, value))
    return out


def read_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def one(message, number):
    found = [v for n, v in fields(message) if n == number]
    assert len(found) == 1, (number, fields(message))
    return found[0]


def main():
    port, token = int(sys.argv[1]), sys.argv[2]
    metadata = [("authorization", f"Bearer {token}")]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    anonymous = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        list(anonymous(iter([text_field(7, "")]), timeout=10))
        raise AssertionError("an anonymous caller read the schema")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    for version in ("v1alpha", "v1"):
        info = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        requests = [
            text_field(7, ""),                          # list_services
            text_field(4, "rich.RichService"),          # file_containing_symbol
            text_field(3, "common_types.proto"),        # file_by_filename
            text_field(4, "rich.RichService.Mix"),      # a method is a symbol too
            text_field(4, "no.such.Thing"),             # not there
            text_field(6, "rich.Scalars"),              # all_extension_numbers_of_type
        ]
        replies = list(info(iter(requests), timeout=10, metadata=metadata))
        assert len(replies) == len(requests), len(replies)

        listed = [one(s, 1).decode() for n, s in fields(one(replies[0], 6)) if n == 1]
        for name in ("rich.RichService", "rich.AdminService", "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"):
            assert name in listed, (name, listed)

        files = [descriptor_pb2.FileDescriptorProto.FromString(f)
                 for n, f in fields(one(replies[1], 4)) if n == 1]
        names = [f.name for f in files]
        assert "rich_service.proto" in names and "common_types.proto" in names, names
        only_common = [descriptor_pb2.FileDescriptorProto.FromString(f).name
                       for n, f in fields(one(replies[2], 4)) if n == 1]
        assert only_common == ["common_types.proto"], only_common
        method_files = [descriptor_pb2.FileDescriptorProto.FromString(f).name
                        for n, f in fields(one(replies[3], 4)) if n == 1]
        assert "rich_service.proto" in method_files, method_files
        error = one(replies[4], 7)
        assert one(error, 1) == 5, fields(error)  # NOT_FOUND
        assert one(one(replies[5], 5), 1) == b"rich.Scalars"
        assert one(replies[0], 2) == requests[0], "original_request echoes the request"

        # The descriptors build in protobuf's own pool, imports first, and name real types.
        pool = descriptor_pool.DescriptorPool()
        added, pending = set(), list(files)
        while pending:
            ready = [f for f in pending if all(d in added for d in f.dependency)]
            assert ready, "an import is missing: " + str([f.name for f in pending])
            for f in ready:
                pool.Add(f)
                added.add(f.name)
                pending.remove(f)
        service = pool.FindServiceByName("rich.RichService")
        mix = service.FindMethodByName("Mix")
        factory = message_factory.MessageFactory(pool)
        request_type = factory.GetPrototype(mix.input_type)
        reply_type = factory.GetPrototype(mix.output_type)
        color = pool.FindEnumTypeByName("rich.Color")
        request = request_type(a=color.values_by_name["COLOR_RED"].number,
                               b=color.values_by_name["COLOR_GREEN"].number)
        call = channel.unary_unary(f"/{service.full_name}/{mix.name}",
                                   request_serializer=request_type.SerializeToString,
                                   response_deserializer=reply_type.FromString)
        reply = call(request, timeout=10, metadata=metadata)
        assert reply.value == color.values_by_name["COLOR_BLUE"].number, reply
        print(f"reflection {version}: {len(listed)} services; Mix resolved and called: "
              f"{color.values_by_number[reply.value].name}")
    print("reflection: OK (refused without a token)")


if __name__ == "__main__":
    main()
