"""Checking an LMDB data file's structure before LMDB maps it.

LMDB maps its file and trusts every page of it: a truncated file, or a damaged page header, node offset, key size
or value size, makes LMDB (or the copy of a value it hands out) read past the end of the file, and the process dies
with SIGBUS; no Python exception can be raised from there. The OC20 files we read come from downloads and copies,
so :func:`check_lmdb_file` walks the main database's B-tree itself, with plain file reads, and refuses a damaged
file with a clear error before LMDB sees it.

Layout (LMDB 0.9, 64-bit, little-endian; ``mdb.c``):

* page ``p`` starts at byte ``p * psize``; its 16-byte header holds ``mp_pgno`` (uint64), ``mp_pad`` (uint16),
  ``mp_flags`` (uint16: 0x01 branch, 0x02 leaf, 0x04 overflow, 0x08 meta, 0x20 LEAF2, 0x40 sub-page) and either
  ``mp_lower``/``mp_upper`` (uint16 each) or, on an overflow page, ``mp_pages`` (uint32, the run length);
* pages 0 and 1 are meta pages: after the header, ``mm_magic`` (uint32 0xBEEFC0DE), ``mm_version``,
  ``mm_address``, ``mm_mapsize``, two 48-byte ``MDB_db`` records (free list, main database: ``md_pad``
  (uint32; the free list's holds the page size), ``md_flags``, ``md_depth`` (uint16), branch, leaf and overflow
  page counts, ``md_entries``, ``md_root`` (uint64 each)), ``mm_last_pg`` and ``mm_txnid`` (uint64); the meta
  page with the larger ``mm_txnid`` is the current one;
* a branch or leaf page holds ``(mp_lower - 16) / 2`` node offsets (uint16) after its header; a node is
  ``mn_lo``, ``mn_hi``, ``mn_flags``, ``mn_ksize`` (uint16 each), then the key, then the data. In a branch node
  ``mn_lo | mn_hi << 16 | mn_flags << 32`` is the child page; in a leaf node ``mn_lo | mn_hi << 16`` is the data
  size, and with flag 0x01 (``F_BIGDATA``) the data is the number of the overflow page run holding the value.

The walk reads only branch and leaf pages and the first page of each overflow run (about one page in a hundred
for OC20's records) and is done once per file per process.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from mlip.errors import MLIPInputError

__all__ = ["check_lmdb_file", "MAGIC"]

MAGIC = 0xBEEFC0DE
_BRANCH, _LEAF, _OVERFLOW = 0x01, 0x02, 0x04
_BIGDATA, _SUBDATA, _DUPDATA = 0x01, 0x02, 0x04
_HEADER = 16
_INVALID = (1 << 64) - 1
_CHECKED: set[tuple[str, int, int, int]] = (
    set()
)  # (path, inode, size, mtime_ns) of files checked in this process


def _meta(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """``(psize, main root, last page, txnid)`` of the meta page at ``offset``, or None if it is not one."""
    if len(data) < offset + 160 or struct.unpack_from("<I", data, offset + 16)[0] != MAGIC:
        return None
    psize = struct.unpack_from("<I", data, offset + 40)[0]
    root = struct.unpack_from("<Q", data, offset + 128)[0]
    last_pg, txnid = struct.unpack_from("<QQ", data, offset + 136)
    return psize, root, last_pg, txnid


class _Walker:
    def __init__(self, fd: int, name: str, psize: int, n_pages: int) -> None:
        self.fd, self.name, self.psize, self.n_pages = fd, name, psize, n_pages
        self.seen: set[int] = set()

    def damaged(self, what: str) -> MLIPInputError:
        return MLIPInputError(f"cannot open {self.name} as an LMDB file: it is damaged ({what})")

    def page(self, pgno: int, nbytes: int | None = None) -> bytes:
        """The first ``nbytes`` (default: all) of page ``pgno``, checked to be a page of the file seen once."""
        if not 2 <= pgno < self.n_pages:
            raise self.damaged(f"a reference to page {pgno} of {self.n_pages}")
        if pgno in self.seen:
            raise self.damaged(f"page {pgno} is referenced twice")
        self.seen.add(pgno)
        data = os.pread(self.fd, nbytes or self.psize, pgno * self.psize)
        if struct.unpack_from("<Q", data, 0)[0] != pgno:
            raise self.damaged(f"page {pgno} holds the header of another page")
        return data

    def nodes(self, data: bytes, pgno: int):
        """``(offset, lo, hi, flags, ksize)`` of every node of a branch or leaf page, each checked to lie in it."""
        lower, upper = struct.unpack_from("<HH", data, 12)
        if not (_HEADER <= lower <= upper <= self.psize) or (lower - _HEADER) % 2:
            raise self.damaged(f"page {pgno} has an invalid node table")
        for i in range((lower - _HEADER) // 2):
            off = struct.unpack_from("<H", data, _HEADER + 2 * i)[0]
            if not upper <= off <= self.psize - 8:
                raise self.damaged(f"node {i} of page {pgno} lies outside the page")
            lo, hi, flags, ksize = struct.unpack_from("<HHHH", data, off)
            if off + 8 + ksize > self.psize:
                raise self.damaged(f"the key of node {i} of page {pgno} runs past the page")
            yield off, lo, hi, flags, ksize

    def walk(self, pgno: int, depth: int) -> None:
        if depth > 64:
            raise self.damaged("the B-tree is deeper than 64 levels")
        data = self.page(pgno)
        flags = struct.unpack_from("<H", data, 10)[0]
        if flags & _BRANCH:
            for _, lo, hi, nflags, _ in self.nodes(data, pgno):
                self.walk(lo | hi << 16 | nflags << 32, depth + 1)
        elif flags & _LEAF:
            for off, lo, hi, nflags, ksize in self.nodes(data, pgno):
                size = lo | hi << 16
                if nflags & (_SUBDATA | _DUPDATA):
                    raise self.damaged(f"page {pgno} holds a sub-database, which these datasets never use")
                if nflags & _BIGDATA:
                    if off + 8 + ksize + 8 > self.psize:
                        raise self.damaged(f"an overflow reference runs past page {pgno}")
                    first = struct.unpack_from("<Q", data, off + 8 + ksize)[0]
                    run = self.page(first, _HEADER)
                    if not struct.unpack_from("<H", run, 10)[0] & _OVERFLOW:
                        raise self.damaged(f"page {first} is not an overflow page")
                    pages = struct.unpack_from("<I", run, 12)[0]
                    if first + pages > self.n_pages or size > pages * self.psize - _HEADER:
                        raise self.damaged(f"the value in pages {first}+{pages} runs past the file")
                elif off + 8 + ksize + size > self.psize:
                    raise self.damaged(f"a value of page {pgno} runs past the page")
        else:
            raise self.damaged(f"page {pgno} is neither a branch nor a leaf page")


def check_lmdb_file(data_file: str | Path) -> None:
    """Refuse an LMDB data file that is truncated or whose main database's tree is damaged (see the module
    docstring); a file that passed is not walked again in this process unless it changes."""
    data_file = Path(data_file)
    st = data_file.stat()
    key = (str(data_file.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    name = str(data_file)
    with open(data_file, "rb") as fh:
        head = fh.read(160)
        first = _meta(head, 0)
        if first is None:
            raise MLIPInputError(
                f"cannot open {name} as an LMDB file: no LMDB meta page (damaged, or not LMDB)"
            )
        psize = first[0]
        if psize < 512 or psize & (psize - 1) or psize > 1 << 16:
            raise MLIPInputError(
                f"cannot open {name} as an LMDB file: a damaged meta page (page size {psize})"
            )
        metas = [first, _meta(os.pread(fh.fileno(), 160, psize), 0)]
        _, root, last_pg, _ = max((m for m in metas if m is not None), key=lambda m: m[3])
        if st.st_size < (last_pg + 1) * psize:
            raise MLIPInputError(
                f"cannot open {name} as an LMDB file: it is truncated ({st.st_size} bytes, its pages need "
                f"{(last_pg + 1) * psize})"
            )
        if root != _INVALID:
            _Walker(fh.fileno(), name, psize, last_pg + 1).walk(root, 0)
    _CHECKED.add(key)
