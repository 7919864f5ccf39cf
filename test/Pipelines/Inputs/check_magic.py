"""Exits 1 unless the file starts with the given hex bytes."""
import sys

head = open(sys.argv[1], "rb").read(len(sys.argv[2]) // 2)
print(head.hex())
sys.exit(0 if head == bytes.fromhex(sys.argv[2]) else 1)
