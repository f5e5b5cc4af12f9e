// Runs every story in test/scenarios/*.txt (see src/sim/scenario.ts for the
// format) and compares each command's actual output with the expected one.
//
// To write a new story: write the commands (and comments), run the tests
// with REWRITE=1 to fill in the outputs, then read every output and check it
// is what Raft must do. Never accept output you have not checked.
//
//   npx tsc -p . && REWRITE=1 node --test dist/test/unit/scenarios.test.js

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseScenario, runScenario } from '../../src/sim/scenario.js';

/** test/scenarios in the source tree, whether we run compiled (dist/test/unit) or not (test/unit). */
function scenarioDir(): string {
  const candidates = [new URL('../../../test/scenarios/', import.meta.url), new URL('../scenarios/', import.meta.url)];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return p;
  }
  throw new Error(`test/scenarios not found near ${fileURLToPath(import.meta.url)}`);
}

/** A line diff (longest common subsequence): "-" expected only, "+" actual only. */
function diffLines(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(`- ${a[i]}`);
      i++;
    } else {
      out.push(`+ ${b[j]}`);
      j++;
    }
  }
  return out.join('\n');
}

const dir = scenarioDir();
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();
const rewrite = process.env['REWRITE'] === '1';

describe('scenarios', () => {
  it('finds the scenario files', () => {
    assert.ok(files.length > 0, `no .txt files in ${dir}`);
  });

  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const text = readFileSync(path, 'utf8');
      const actual = runScenario(text);
      if (rewrite) {
        if (actual !== text) writeFileSync(path, actual);
        return;
      }
      if (actual === text) return;
      // Report each command whose output differs, with its line.
      const want = parseScenario(text).commands;
      const got = parseScenario(actual).commands;
      const reports: string[] = [];
      for (let k = 0; k < want.length; k++) {
        const w = want[k]!;
        const g = got[k]!;
        if (w.expected === g.expected) continue;
        reports.push(
          `${file}:${w.line}: ${w.text}\n` +
            (w.expected === undefined ? '(no expected output written)\n' : '') +
            diffLines(w.expected ?? '', g.expected ?? ''),
        );
      }
      if (reports.length === 0) reports.push(`${file}: formatting differs (blank lines or "----"); run with REWRITE=1`);
      assert.fail(`scenario output differs (- expected, + actual):\n\n${reports.join('\n\n')}`);
    });
  }
});
