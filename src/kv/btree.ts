// An ordered set of string keys: a B+tree whose leaves are chained for range
// scans, the ordering half of etcd's in-memory index (a google/btree of
// keyIndex, server/storage/mvcc/index.go); the store keeps each key's
// history in a hash map beside it. Keys are one-byte strings
// (bytesToLatin1), so JavaScript's string order is the bytes' order.
//
// Inserts are O(log n); a scan from a key costs O(log n) to find the first
// leaf and then O(1) per key. There is no single-key delete: the
// store removes keys only when compaction drops their whole history, and then
// rebuilds the tree from the survivors in one O(n) pass (compaction is a full
// pass anyway).

/** Entries per leaf and children per inner node. */
const ORDER = 64;

class Leaf {
  next: Leaf | null = null;
  constructor(public keys: string[]) {}
}

class Inner {
  constructor(
    /** keys[i] separates children[i] (keys < keys[i]) from children[i + 1] (keys >= keys[i]). */
    public keys: string[],
    public children: Node[],
  ) {}
}

type Node = Leaf | Inner;

/** The number of keys in `keys` that are <= key. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The number of keys in `keys` that are < key. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class BTree {
  private root: Node = new Leaf([]);
  private count = 0;
  /** The descent of the current insert: nodes and child slots (kept to spare an allocation per insert). */
  private readonly path: Inner[] = [];
  private readonly slots: number[] = [];

  get size(): number {
    return this.count;
  }

  /** Inserts a key that is not in the set (the caller knows: its hash map has no entry). */
  insert(key: string): void {
    const path = this.path;
    const slots = this.slots;
    path.length = 0;
    slots.length = 0;
    let node = this.root;
    while (node instanceof Inner) {
      const i = upperBound(node.keys, key);
      path.push(node);
      slots.push(i);
      node = node.children[i]!;
    }
    const leaf = node;
    const at = lowerBound(leaf.keys, key);
    leaf.keys.splice(at, 0, key);
    this.count++;
    if (leaf.keys.length <= ORDER) return;

    // Split. Appending at the right edge (ascending keys, the common load)
    // leaves the full leaf full and starts a new one, so sequential inserts
    // fill leaves completely instead of half.
    const cut = at === ORDER && leaf.next === null ? ORDER : ORDER >>> 1;
    const right = new Leaf(leaf.keys.splice(cut));
    right.next = leaf.next;
    leaf.next = right;
    let sep = right.keys[0]!;
    let child: Node = right;
    for (let d = path.length - 1; d >= 0; d--) {
      const parent = path[d]!;
      const i = slots[d]!;
      parent.keys.splice(i, 0, sep);
      parent.children.splice(i + 1, 0, child);
      if (parent.children.length <= ORDER) return;
      const half = parent.children.length >>> 1;
      // keys[half - 1] moves up; the right node takes the keys after it.
      const upKey = parent.keys[half - 1]!;
      const sibling = new Inner(parent.keys.splice(half), parent.children.splice(half));
      parent.keys.pop();
      sep = upKey;
      child = sibling;
    }
    this.root = new Inner([sep], [this.root, child]);
  }

  /**
   * Calls `visit` for each key with from <= key < to (to undefined: no
   * upper bound), in ascending order, until it returns false.
   */
  scan(from: string, to: string | undefined, visit: (key: string) => boolean): void {
    let node = this.root;
    while (node instanceof Inner) node = node.children[upperBound(node.keys, from)]!;
    let leaf: Leaf | null = node;
    let i = lowerBound(leaf.keys, from);
    while (leaf !== null) {
      const keys = leaf.keys;
      for (; i < keys.length; i++) {
        const k = keys[i]!;
        if (to !== undefined && k >= to) return;
        if (!visit(k)) return;
      }
      leaf = leaf.next;
      i = 0;
    }
  }

  /** Every key in ascending order. */
  forEach(visit: (key: string) => void): void {
    for (let leaf: Leaf | null = this.firstLeaf(); leaf !== null; leaf = leaf.next) {
      for (const k of leaf.keys) visit(k);
    }
  }

  /** Keeps only the keys for which `keep` is true; O(n). */
  retain(keep: (key: string) => boolean): void {
    const keys: string[] = [];
    this.forEach((k) => {
      if (keep(k)) keys.push(k);
    });
    if (keys.length !== this.count) this.build(keys);
  }

  /** Replaces the contents with sorted, distinct `keys`; O(n). */
  build(keys: readonly string[]): void {
    this.count = keys.length;
    // Leaves three-quarters full: room for inserts before the first splits.
    const per = (ORDER * 3) >>> 2;
    let level: Node[] = [];
    let firstKeys: string[] = [];
    let prev: Leaf | null = null;
    for (let i = 0; i < keys.length || level.length === 0; i += per) {
      const leaf = new Leaf(keys.slice(i, i + per));
      if (prev) prev.next = leaf;
      prev = leaf;
      level.push(leaf);
      firstKeys.push(leaf.keys[0] ?? '');
    }
    while (level.length > 1) {
      const up: Node[] = [];
      const upFirst: string[] = [];
      for (let i = 0; i < level.length; i += per) {
        const children = level.slice(i, i + per);
        up.push(new Inner(firstKeys.slice(i + 1, i + children.length), children));
        upFirst.push(firstKeys[i]!);
      }
      level = up;
      firstKeys = upFirst;
    }
    this.root = level[0]!;
  }

  private firstLeaf(): Leaf {
    let node = this.root;
    while (node instanceof Inner) node = node.children[0]!;
    return node;
  }
}
