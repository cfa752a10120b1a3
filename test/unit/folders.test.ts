// Proves src/'s folders import one another in one direction only: no folder reaches, through any
// chain of imports, back to itself (issue #6 asked for it; nothing else would notice a new cycle).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Folder → the other folders of src/ its files import from (types included). */
function folderImports(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const folder of readdirSync(SRC, { withFileTypes: true })) {
    if (!folder.isDirectory()) continue;
    const targets = new Set<string>();
    graph.set(folder.name, targets);
    for (const file of readdirSync(join(SRC, folder.name), { recursive: true })) {
      const path = join(SRC, folder.name, String(file));
      if (!path.endsWith('.ts')) continue;
      for (const { fileName } of ts.preProcessFile(readFileSync(path, 'utf8'), true, true)
        .importedFiles) {
        if (!fileName.startsWith('.')) continue;
        const target = relative(SRC, resolve(dirname(path), fileName)).split('/')[0]!;
        if (target !== folder.name && !target.startsWith('..')) targets.add(target);
      }
    }
  }
  return graph;
}

/** The first cycle found, as the folders along it, or undefined when there is none. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (folder: string): string[] | undefined => {
    const at = path.indexOf(folder);
    if (at >= 0) return [...path.slice(at), folder];
    if (done.has(folder)) return undefined;
    path.push(folder);
    for (const next of graph.get(folder) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(folder);
    return undefined;
  };
  for (const folder of graph.keys()) {
    const cycle = visit(folder);
    if (cycle) return cycle;
  }
  return undefined;
}

it('finds a cycle when there is one (the check itself works)', () => {
  const graph = new Map([
    ['http', new Set(['domain'])],
    ['transfers', new Set(['http', 'ledger'])],
    ['ledger', new Set(['transfers'])],
    ['domain', new Set<string>()],
  ]);
  expect(findCycle(graph)).toEqual(['transfers', 'ledger', 'transfers']);
  graph.set('ledger', new Set(['domain']));
  expect(findCycle(graph)).toBeUndefined();
});

it("src/'s folders import in one direction: no chain of imports leads a folder back to itself", () => {
  const graph = folderImports();
  // The graph was read: the folders that must sit above others do import them.
  expect(graph.get('transfers')).toContain('domain');
  expect(graph.get('partitions')).toContain('ledger');
  expect(findCycle(graph)).toBeUndefined();
});
