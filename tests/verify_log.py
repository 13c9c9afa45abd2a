#!/usr/bin/env python3
"""Independent check of a sandbox-audit log, standard library only.

Per record: the line is canonical JSON, `hash` is the SHA-256 of the record
without `hash`, `seq` counts from 0, `prev_hash` links. Per checkpoint: the
tree size and RFC 6962 root (leaf = SHA-256(0x00 || 32 raw bytes of `hash`))
recomputed over all records before it. NOT checked: Ed25519 signatures (not in
the standard library: `sandbox-audit verify --pubkey` checks them), recoveries.
Usage: verify_log.py DIR | SEGMENT_FILES..."""
import base64, hashlib, json, os, sys

def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()

def push(frontier, leaf):  # frontier: [(subtree size, hash)], largest first
    size, h = 1, leaf
    while frontier and frontier[-1][0] == size:
        h, size = node(frontier.pop()[1], h), size * 2
    frontier.append((size, h))

def root(frontier):
    acc = frontier[-1][1] if frontier else hashlib.sha256(b"").digest()
    for _, h in reversed(frontier[:-1]):
        acc = node(h, acc)
    return acc

def segments(args):
    key = lambda n: (int(n[4:24]), int(n[25:-4] or 0))
    for a in args:
        names = [n for n in os.listdir(a) if n.startswith("seg-") and n.endswith(".log")] if os.path.isdir(a) else None
        yield from ([os.path.join(a, n) for n in sorted(names, key=key)] if names is not None else [a])

def main(args):
    frontier, prev, seq, checkpoints = [], "0" * 64, 0, 0
    for path in segments(args):
        for raw in open(path, "rb").read().split(b"\n")[:-1]:  # bytes after the last newline: torn
            rec = json.loads(raw)
            h = rec.pop("hash")
            where = f"{path}: seq {seq}"
            if canon({**rec, "hash": h}) != raw: return f"{where}: line is not canonical"
            if hashlib.sha256(canon(rec)).hexdigest() != h: return f"{where}: hash does not match content"
            if rec["seq"] != seq or rec["prev_hash"] != prev: return f"{where}: seq or prev_hash breaks the chain"
            if rec["kind"] == "checkpoint":
                origin, size, root_b64 = rec["note"].split("\n\n")[0].split("\n")[:3]
                if int(size) != seq or base64.b64decode(root_b64) != root(frontier):
                    return f"{where}: checkpoint size/root do not match the records before it"
                checkpoints += 1
            push(frontier, hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest())
            prev, seq = h, seq + 1
    print(f"ok: {seq} records chained, {checkpoints} checkpoint roots recomputed "
          "(Ed25519 signatures not checked: not in the Python standard library)")

if __name__ == "__main__":
    error = main(sys.argv[1:] or ["/var/log/sandbox-audit"])
    if error:
        print(f"TAMPERED: {error}")
        sys.exit(1)
