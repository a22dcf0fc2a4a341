#!/usr/bin/python3
"""The native gRPC server grants a request of the largest size room to arrive whole.

A raw HTTP/2 peer (python3-h2) reads the server's SETTINGS and window, then sends three calls of
EchoScalars at once on one connection, each a message of exactly max_message_bytes, every byte
of every request before it reads anything more from the server: python3-h2 refuses to send past
the windows the server granted, so a window short of a whole request fails the test (a request
that has to wait for a WINDOW_UPDATE costs a round trip; before, a request of 1 MiB and a few
bytes waited for one to send its last 9 bytes). Each reply must then carry its request's text.
Usage: window_test.py RICH_SERVER_BINARY
"""
import sys

from interop_util import ECHO_SCALARS_HEADERS, h2_client, start_rich_server, varint

try:
    import h2.events
    import h2.exceptions
except ImportError as e:
    sys.exit(f"window_test: {e.name} is missing: apt-get install python3-h2")

MAX_MESSAGE = 4 * 1024 * 1024
CALLS = 3


def request(i):
    """A Scalars message of exactly MAX_MESSAGE bytes (text, field 12), each call's its own."""
    head = b"\x62"
    size = MAX_MESSAGE - len(head) - len(varint(MAX_MESSAGE))  # the text's length takes as long
    text = (f"call {i} ".encode() * (size // 7 + 1))[:size]
    message = head + varint(size) + text
    assert len(message) == MAX_MESSAGE
    return message


def main():
    server, port = start_rich_server(sys.argv[1], [f"max_message_bytes={MAX_MESSAGE}"],
                                     "window_test")
    try:
        sock, conn = h2_client(port, acked=True)
        messages = {}
        for i in range(CALLS):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, ECHO_SCALARS_HEADERS)
            messages[stream] = request(i)
        need = MAX_MESSAGE + 5
        for stream, message in messages.items():
            granted = conn.local_flow_control_window(stream)
            if granted < need:
                sys.exit(f"window_test: FAIL: the server's window lets {granted} bytes of a "
                         f"request of {need} (stream {stream}) through before a WINDOW_UPDATE")
            framed = b"\x00" + len(message).to_bytes(4, "big") + message
            step = conn.max_outbound_frame_size
            try:
                for at in range(0, len(framed), step):
                    conn.send_data(stream, framed[at:at + step],
                                   end_stream=at + step >= len(framed))
            except h2.exceptions.FlowControlError as e:
                sys.exit(f"window_test: FAIL: the server's windows held request {stream} back: {e}")
            sock.sendall(conn.data_to_send())
        replies = {stream: b"" for stream in messages}
        statuses = {}
        sock.settimeout(60)
        while len(statuses) < CALLS:
            data = sock.recv(1 << 20)
            if not data:
                sys.exit(f"window_test: FAIL: the server closed the connection ({statuses})")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    replies[event.stream_id] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    statuses[event.stream_id] = dict(event.headers).get(b"grpc-status")
                elif isinstance(event, h2.events.StreamReset):
                    sys.exit(f"window_test: FAIL: stream {event.stream_id} reset "
                             f"({event.error_code!r})")
            sock.sendall(conn.data_to_send())
        for stream, message in messages.items():
            if statuses[stream] != b"0":
                sys.exit(f"window_test: FAIL: call {stream} ended with grpc-status "
                         f"{statuses[stream]!r}")
            # The echo: the request's text field first, then the fields the server's struct
            # always carries (its level).
            reply = replies[stream]
            if (int.from_bytes(reply[1:5], "big") != len(reply) - 5 or
                    reply[5:5 + len(message)] != message):
                sys.exit(f"window_test: FAIL: call {stream}'s reply ({len(reply)} bytes) does not "
                         f"carry its request's text ({len(message)} bytes)")
        if server.poll() is not None:
            sys.exit("window_test: FAIL: the server exited")
        print(f"window_test: {CALLS} requests of {MAX_MESSAGE} bytes sent whole on one connection "
              f"before any WINDOW_UPDATE, each echoed back")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
