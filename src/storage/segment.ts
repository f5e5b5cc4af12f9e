// Segment files: naming, and reading their records back in order.
//
// A segment is named <seq>-<firstIndex>.wal (16 hex digits each, as etcd
// names its WAL files), so a directory listing sorts in log order and says
// where each segment starts without opening it.

import { type FileSystem, type FileHandle, joinPath } from './fs.js';
import { SECTOR_BYTES } from './memoryFs.js';
import { FRAME_HEADER_BYTES, type FrameProblem, MAX_PAYLOAD_BYTES, RECORD_FLUSH, isZero, padded, readFrame } from './record.js';

export interface SegmentFile {
  readonly seq: number;
  readonly firstIndex: number;
  readonly name: string;
}

const SEGMENT_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${hex16(seq)}-${hex16(firstIndex)}.wal`;
}

export function parseSegmentName(name: string): SegmentFile | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return undefined;
  return { seq: parseInt(m[1]!, 16), firstIndex: parseInt(m[2]!, 16), name };
}

/** The segments in a directory, in order. */
export function listSegments(fs: FileSystem, dir: string): SegmentFile[] {
  const out: SegmentFile[] = [];
  for (const name of fs.list(dir)) {
    const s = parseSegmentName(name);
    if (s) out.push(s);
  }
  return out.sort(bySeq);
}

/** (At module level: V8 optimizes a closure made per call again for every call that gets hot.) */
function bySeq(a: SegmentFile, b: SegmentFile): number {
  return a.seq - b.seq;
}

/** Why a scan stopped: the end of the file, or the first bytes that are not a record. */
export interface ScanEnd {
  /** The offset just past the last good record. */
  readonly end: number;
  readonly stop: 'eof' | FrameProblem;
  readonly fileSize: number;
}

const CHUNK_BYTES = 1 << 20;

/**
 * Reads a segment's records in order from `from`, calling `visit` with each
 * payload (a view into a reused buffer: copy what you keep) and its offset.
 * `visit` returns false to stop early. Reads in chunks (1 MiB here), so
 * memory stays small whatever the segment's size.
 */
export function scanSegment(
  fs: FileSystem,
  path: string,
  visit: (payload: Uint8Array, offset: number) => boolean | void,
  from = 0,
): ScanEnd {
  const fd = fs.open(path, false);
  try {
    return scanOpen(fs, fd, CHUNK_BYTES, visit, from);
  } finally {
    fs.close(fd);
  }
}

/**
 * scanSegment on an open file, reading `chunk` bytes at a time: a size, or
 * a buffer to read into (reused across scans by a caller that scans often;
 * it is replaced, not grown, for a record larger than it). The first read
 * asks for `firstRead` bytes (default: a whole chunk) and each further one
 * for twice the last, up to the chunk: a scan expected to stop after a few
 * records reads little more than them.
 */
export function scanOpen(
  fs: FileSystem,
  fd: FileHandle,
  chunk: number | Uint8Array,
  visit: (payload: Uint8Array, offset: number) => boolean | void,
  from = 0,
  firstRead = Infinity,
): ScanEnd {
  const fileSize = fs.size(fd);
  let buf = typeof chunk === 'number' ? new Uint8Array(Math.min(chunk, Math.max(fileSize - from, FRAME_HEADER_BYTES))) : chunk;
  let view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  /** How much the next read asks for. */
  let readBytes = Math.max(FRAME_HEADER_BYTES, Math.min(buf.length, firstRead));
  /** File offset of buf[0]. */
  let base = from;
  let filled = fs.read(fd, readBytes === buf.length ? buf : buf.subarray(0, readBytes), base);
  let at = 0;

  /** Makes buf hold `n` bytes from `at` (or all that is left of the file). */
  const ensure = (n: number): void => {
    if (at + n <= filled || base + filled >= fileSize) return;
    if (n > buf.length) {
      const next = new Uint8Array(Math.max(n, buf.length * 2));
      next.set(buf.subarray(at, filled));
      buf = next;
      view = new DataView(buf.buffer);
    } else {
      buf.copyWithin(0, at, filled);
    }
    filled -= at;
    base += at;
    at = 0;
    readBytes = Math.min(buf.length, readBytes * 2);
    filled += fs.read(fd, buf.subarray(filled, Math.max(n, readBytes)), base + filled);
  };

  for (;;) {
    if (base + at >= fileSize) return { end: base + at, stop: 'eof', fileSize };
    ensure(FRAME_HEADER_BYTES);
    if (at + FRAME_HEADER_BYTES <= filled) {
      const length = view.getUint32(at + 4, true);
      if (length > 0 && length <= MAX_PAYLOAD_BYTES) ensure(FRAME_HEADER_BYTES + padded(length));
    }
    const frame = readFrame(buf, view, at, filled);
    if (!frame.ok) return { end: base + at, stop: frame.problem, fileSize };
    if (visit(frame.payload, base + at) === false) return { end: base + at + frame.size, stop: 'eof', fileSize };
    at += frame.size;
  }
}

/**
 * Whether a frame that failed its checksum was torn by a crash: disks write
 * whole sectors, so a write cut short leaves at least one sector of the
 * frame as it was before, i.e. zeros in a preallocated segment. A frame
 * without such a sector was written whole and damaged later (as etcd's
 * isTornEntry reasons).
 */
export function isTornFrame(fs: FileSystem, fd: FileHandle, offset: number, fileSize: number): boolean {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  if (fs.read(fd, header, offset) < FRAME_HEADER_BYTES) return true;
  const length = new DataView(header.buffer).getUint32(4, true);
  const end = Math.min(fileSize, offset + FRAME_HEADER_BYTES + Math.min(length, MAX_PAYLOAD_BYTES));
  const bytes = new Uint8Array(end - offset);
  fs.read(fd, bytes, offset);
  let chunkStart = offset;
  while (chunkStart < end) {
    const chunkEnd = Math.min(end, (Math.floor(chunkStart / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    if (isZero(bytes, chunkStart - offset, chunkEnd - offset)) return true;
    chunkStart = chunkEnd;
  }
  return false;
}

/**
 * What lies after the end of the good records of the last segment, at
 * `from` (8-aligned). A crash can only damage the write that was in flight
 * (one flush: its records, then a flush marker), and since a disk may
 * persist that write's sectors in any order, valid records of the same
 * flush may survive after a hole. But a record written after a flush marker
 * belongs to a later flush, which began only once the damaged one was
 * durable: then synced data is damaged (`syncedAfter` is its offset).
 * Also returns the end of the non-zero bytes (the extent of a torn tail).
 * One pass, skipping zeros 8 bytes at a time (most of a preallocated
 * segment) and jumping over valid records.
 */
export function scanTail(
  fs: FileSystem,
  fd: FileHandle,
  from: number,
  fileSize: number,
): { syncedAfter: number | undefined; dirtyEnd: number } {
  const buf = new Uint8Array(Math.min(CHUNK_BYTES, padded(Math.max(fileSize - from, FRAME_HEADER_BYTES))));
  const words = new Uint32Array(buf.buffer);
  const view = new DataView(buf.buffer);
  let dirtyEnd = from;
  let sawFlushEnd = false;
  /** Valid records end here: scanning resumes after them. */
  let skipTo = from;
  for (let base = from; base < fileSize; base += buf.length) {
    const filled = fs.read(fd, buf, base);
    const whole = filled & ~7;
    for (let at = 0; at < whole; at += 8) {
      const w = at >> 2;
      if (words[w] === 0 && words[w + 1] === 0) continue;
      for (let k = 7; k >= 0; k--) {
        if (buf[at + k] !== 0) {
          dirtyEnd = Math.max(dirtyEnd, base + at + k + 1);
          break;
        }
      }
      const offset = base + at;
      if (offset < skipTo || offset === from) continue;
      // A candidate record: a plausible length, then the whole frame checked.
      const length = view.getUint32(at + 4, true);
      if (length === 0 || length > fileSize - offset - FRAME_HEADER_BYTES) continue;
      const frame = new Uint8Array(FRAME_HEADER_BYTES + length);
      fs.read(fd, frame, offset);
      if (!readFrame(frame, new DataView(frame.buffer), 0, frame.length).ok) continue;
      if (sawFlushEnd) return { syncedAfter: offset, dirtyEnd };
      if (frame[FRAME_HEADER_BYTES] === RECORD_FLUSH) sawFlushEnd = true;
      skipTo = offset + FRAME_HEADER_BYTES + padded(length);
    }
    for (let k = whole; k < filled; k++) if (buf[k] !== 0) dirtyEnd = base + k + 1;
  }
  return { syncedAfter: undefined, dirtyEnd };
}

export function segmentPath(dir: string, s: SegmentFile): string {
  return joinPath(dir, s.name);
}
