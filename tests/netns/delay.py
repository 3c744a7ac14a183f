#!/usr/bin/env python3
"""Delays packets in user space: a stand-in for `tc qdisc ... netem delay`
on kernels built without sch_netem.

Usage: delay.py QUEUE DELAY_MS [READY_FILE]

Binds netfilter queue QUEUE (iptables -j NFQUEUE --queue-num QUEUE) of the
network namespace it runs in, and accepts every packet queued there
DELAY_MS milliseconds after it arrived, in arrival order. It writes
READY_FILE (if given) once the queue is bound, and runs until SIGTERM or
SIGINT. Python's standard library only: the nfnetlink_queue protocol is
spoken over a raw AF_NETLINK socket (linux/netfilter/nfnetlink_queue.h).

Packets are queued with their metadata only (NFQNL_COPY_META), the queue
fails open (a full queue accepts instead of dropping), and the iptables rule
should use --queue-bypass, so traffic keeps flowing, undelayed, if this
process is gone; whoever relies on the delay must measure it.
"""
import collections
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid


def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    # nfgenmsg: family, version, res_id (the queue number, big-endian).
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + b"".join(attrs)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


def messages(data):
    """(type, payload after the netlink header) of each message in a datagram."""
    off = 0
    while off + NLMSG_HDR.size <= len(data):
        length, msg_type, _, _, _ = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size:
            break
        yield msg_type, data[off + NLMSG_HDR.size:off + length]
        off += (length + 3) & ~3


def attrs(payload):
    off = 0
    while off + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, off)
        if length < 4:
            break
        yield kind & 0x3FFF, payload[off + 4:off + length]
        off += (length + 3) & ~3


def configure(sock, queue, attributes, seq):
    """Sends one config message and raises OSError if the kernel refuses it."""
    sock.send(message(NFQNL_MSG_CONFIG, queue, attributes, NLM_F_REQUEST | NLM_F_ACK, seq))
    while True:
        for msg_type, payload in messages(sock.recv(65536)):
            if msg_type == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", payload)
                if err != 0:
                    raise OSError(-err, f"nfnetlink_queue config of queue {queue}: {os.strerror(-err)}")
                return


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:  # room for bursts; SO_RCVBUFFORCE needs CAP_NET_ADMIN, which binding the queue needs anyway
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    configure(sock, queue, [attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))], 1)
    configure(sock, queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
                            attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)),
                            attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                            attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))], 2)
    sock.setblocking(False)
    if len(sys.argv) == 4:
        with open(sys.argv[3], "w") as f:
            f.write(f"{os.getpid()}\n")

    # The delay is the same for every packet, so due times are in arrival
    # order: a FIFO, released with one batch verdict (every id <= the last due).
    pending = collections.deque()
    while True:
        timeout = None if not pending else max(0.0, pending[0][0] - time.monotonic())
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            while True:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as e:  # ENOBUFS: notices lost; the queue failing open accepted those packets undelayed
                    if e.errno == errno.ENOBUFS:
                        continue
                    raise
                now = time.monotonic()
                for msg_type, payload in messages(data):
                    if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        continue
                    for kind, value in attrs(payload[4:]):  # after nfgenmsg
                        if kind == NFQA_PACKET_HDR:
                            pending.append((now + delay, struct.unpack_from("!I", value)[0]))
        now = time.monotonic()
        last = None
        while pending and pending[0][0] <= now:
            last = pending.popleft()[1]
        if last is not None:
            sock.send(message(NFQNL_MSG_VERDICT_BATCH, queue, [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))]))


if __name__ == "__main__":
    main()
