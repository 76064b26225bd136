"""RFC 6455 server side, as much as Supabase Realtime's clients need: the
opening handshake's accept key, and the framing (text, binary,
continuation, close, ping, pong; client frames masked, server frames not;
payload lengths of 7, 16 and 64 bits; no extensions, so RSV bits must be
0).  Written from RFC 6455 sections 1.3 (Sec-WebSocket-Accept), 5.2 (base
framing), 5.4 (fragmentation), 5.5 (control frames: at most 125 bytes,
never fragmented) and 7.4 (close codes: 1000 normal, 1002 protocol error,
1007 bad UTF-8, 1009 too big)."""

import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
DATA_OPS = (OP_CONT, OP_TEXT, OP_BINARY)

# The largest message (after reassembly) a client may send.
MAX_MESSAGE = 1 << 20


class ProtocolError(Exception):
    """The client broke the framing: close with `code` (RFC 6455 7.4.1)."""

    def __init__(self, message, code=1002):
        super().__init__(message)
        self.code = code


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 1.3)."""
    return base64.b64encode(hashlib.sha1(key.strip().encode("ascii") + GUID).digest()).decode()


def valid_key(key):
    """A Sec-WebSocket-Key is 16 random bytes, base64 (RFC 6455 4.1)."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (ValueError, TypeError):
        return False


def encode_frame(opcode, payload=b"", fin=True, mask=None):
    """One frame.  A server sends unmasked frames; mask (4 bytes) is for
    tests that play the client."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask is not None:
        head += mask
        payload = apply_mask(payload, mask)
    return head + payload


def apply_mask(data, mask):
    """XOR with the 4-byte masking key (RFC 6455 5.3)."""
    if not data:
        return b""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def close_payload(code, reason=""):
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


def _read_exact(read, n):
    data = b""
    while len(data) < n:
        chunk = read(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def read_frame(read, require_mask=True):
    """(fin, opcode, payload) of the next frame; read(n) returns up to n
    bytes (b"" at the end).  EOFError at the end of the stream,
    ProtocolError for a frame RFC 6455 forbids."""
    b0, b1 = _read_exact(read, 2)
    fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
    masked, n = bool(b1 & 0x80), b1 & 0x7F
    if rsv:
        raise ProtocolError("RSV bits set without an extension")
    if opcode not in CONTROL_OPS and opcode not in DATA_OPS:
        raise ProtocolError("unknown opcode %#x" % opcode)
    if require_mask and not masked:
        raise ProtocolError("a client frame must be masked")
    if n == 126:
        n = struct.unpack("!H", _read_exact(read, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(read, 8))[0]
        if n >> 63:
            raise ProtocolError("payload length with the top bit set")
    if opcode in CONTROL_OPS and (n > 125 or not fin):
        raise ProtocolError("a control frame is short and never fragmented")
    if n > MAX_MESSAGE:
        raise ProtocolError("message too big", 1009)
    mask = _read_exact(read, 4) if masked else None
    payload = _read_exact(read, n)
    if mask is not None:
        payload = apply_mask(payload, mask)
    return fin, opcode, payload


class MessageReader:
    """Messages out of frames: reassembles fragments, hands control
    frames back as they come (they may sit between fragments)."""

    def __init__(self, read, require_mask=True):
        self.read = read
        self.require_mask = require_mask
        self.parts, self.first = [], None      # a fragmented message so far

    def next(self):
        """(opcode, payload): a whole text / binary message (text decoded
        to str), or a control frame (one may come between the fragments
        of a message: the message goes on at the next call).  EOFError,
        ProtocolError."""
        while True:
            fin, opcode, payload = read_frame(self.read, self.require_mask)
            if opcode in CONTROL_OPS:
                return opcode, payload
            if opcode == OP_CONT:
                if self.first is None:
                    raise ProtocolError("continuation without a message")
            elif self.first is not None:
                raise ProtocolError("a new message inside a fragmented one")
            else:
                self.first = opcode
            self.parts.append(payload)
            if sum(len(p) for p in self.parts) > MAX_MESSAGE:
                raise ProtocolError("message too big", 1009)
            if fin:
                data, first = b"".join(self.parts), self.first
                self.parts, self.first = [], None
                if first == OP_TEXT:
                    try:
                        return first, data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("text that is not UTF-8", 1007)
                return first, data
