// An ordered map from string keys to values: a B+tree whose leaves are
// chained for range scans, the role etcd's in-memory index (a google/btree of
// keyIndex) plays in server/storage/mvcc/index.go. Keys are one-byte strings
// (bytesToLatin1), so JavaScript's string order is the bytes' order.
//
// Lookups and inserts are O(log n); a scan from a key costs O(log n) to find
// the first leaf and then O(1) per entry. There is no single-key delete: the
// store removes keys only when compaction drops their whole history, and then
// rebuilds the tree from the survivors in one O(n) pass (compaction is a full
// pass anyway).

/** Entries per leaf and children per inner node. */
const ORDER = 64;

class Leaf<V> {
  next: Leaf<V> | null = null;
  constructor(
    public keys: string[],
    public vals: V[],
  ) {}
}

class Inner<V> {
  constructor(
    /** keys[i] separates children[i] (keys < keys[i]) from children[i + 1] (keys >= keys[i]). */
    public keys: string[],
    public children: Node<V>[],
  ) {}
}

type Node<V> = Leaf<V> | Inner<V>;

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

export class BTree<V> {
  private root: Node<V> = new Leaf<V>([], []);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /**
   * Inserts a key that is not in the tree (the caller knows: it keeps a hash
   * map beside the tree for point lookups).
   */
  insert(key: string, val: V): void {
    const path: Inner<V>[] = [];
    const slots: number[] = [];
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
    leaf.vals.splice(at, 0, val);
    this.count++;
    if (leaf.keys.length <= ORDER) return;

    // Split. Appending at the right edge (ascending keys, the common load)
    // leaves the full leaf full and starts a new one, so sequential inserts
    // fill leaves completely instead of half.
    const cut = at === ORDER && leaf.next === null ? ORDER : ORDER >>> 1;
    const right = new Leaf<V>(leaf.keys.splice(cut), leaf.vals.splice(cut));
    right.next = leaf.next;
    leaf.next = right;
    let sep = right.keys[0]!;
    let child: Node<V> = right;
    for (let d = path.length - 1; d >= 0; d--) {
      const parent = path[d]!;
      const i = slots[d]!;
      parent.keys.splice(i, 0, sep);
      parent.children.splice(i + 1, 0, child);
      if (parent.children.length <= ORDER) return;
      const half = parent.children.length >>> 1;
      // keys[half - 1] moves up; the right node takes the keys after it.
      const upKey = parent.keys[half - 1]!;
      const sibling = new Inner<V>(parent.keys.splice(half), parent.children.splice(half));
      parent.keys.pop();
      sep = upKey;
      child = sibling;
    }
    this.root = new Inner<V>([sep], [this.root, child]);
  }

  get(key: string): V | undefined {
    let node = this.root;
    while (node instanceof Inner) node = node.children[upperBound(node.keys, key)]!;
    const i = lowerBound(node.keys, key);
    return node.keys[i] === key ? node.vals[i] : undefined;
  }

  /**
   * Calls `visit` for each entry with from <= key < to (to undefined: no
   * upper bound), in ascending order, until it returns false.
   */
  scan(from: string, to: string | undefined, visit: (key: string, val: V) => boolean): void {
    let node = this.root;
    while (node instanceof Inner) node = node.children[upperBound(node.keys, from)]!;
    let leaf: Leaf<V> | null = node;
    let i = lowerBound(leaf.keys, from);
    while (leaf !== null) {
      const keys = leaf.keys;
      const vals = leaf.vals;
      for (; i < keys.length; i++) {
        const k = keys[i]!;
        if (to !== undefined && k >= to) return;
        if (!visit(k, vals[i]!)) return;
      }
      leaf = leaf.next;
      i = 0;
    }
  }

  /** Every entry in ascending order. */
  forEach(visit: (key: string, val: V) => void): void {
    for (let leaf: Leaf<V> | null = this.firstLeaf(); leaf !== null; leaf = leaf.next) {
      const keys = leaf.keys;
      const vals = leaf.vals;
      for (let i = 0; i < keys.length; i++) visit(keys[i]!, vals[i]!);
    }
  }

  /** Keeps only the entries for which `keep` is true; O(n). */
  retain(keep: (key: string, val: V) => boolean): void {
    const keys: string[] = [];
    const vals: V[] = [];
    this.forEach((k, v) => {
      if (keep(k, v)) {
        keys.push(k);
        vals.push(v);
      }
    });
    if (keys.length !== this.count) this.build(keys, vals);
  }

  /** Replaces the contents with sorted, distinct `keys` and their `vals`; O(n). */
  build(keys: readonly string[], vals: readonly V[]): void {
    this.count = keys.length;
    // Leaves three-quarters full: room for inserts before the first splits.
    const per = (ORDER * 3) >>> 2;
    let level: Node<V>[] = [];
    let firstKeys: string[] = [];
    let prev: Leaf<V> | null = null;
    for (let i = 0; i < keys.length || level.length === 0; i += per) {
      const leaf = new Leaf<V>(keys.slice(i, i + per), vals.slice(i, i + per));
      if (prev) prev.next = leaf;
      prev = leaf;
      level.push(leaf);
      firstKeys.push(leaf.keys[0] ?? '');
    }
    while (level.length > 1) {
      const up: Node<V>[] = [];
      const upFirst: string[] = [];
      for (let i = 0; i < level.length; i += per) {
        const children = level.slice(i, i + per);
        const seps = firstKeys.slice(i + 1, i + children.length);
        up.push(new Inner<V>(seps, children));
        upFirst.push(firstKeys[i]!);
      }
      level = up;
      firstKeys = upFirst;
    }
    this.root = level[0]!;
  }

  private firstLeaf(): Leaf<V> {
    let node = this.root;
    while (node instanceof Inner) node = node.children[0]!;
    return node;
  }
}
