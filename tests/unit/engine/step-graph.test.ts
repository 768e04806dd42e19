import { describe, expect, it } from 'vitest';
import { parsePlaybook } from '../../../src/engine/manifest.ts';
import { StepGraph } from '../../../src/engine/run/step-graph.ts';

const graph = new StepGraph(
  parsePlaybook(
    `id: graph
name: Graph
version: 1
trigger: { manual: true }
steps:
  - id: a
    script: { javascript: "return 1" }
    on_error: { goto: d }
  - id: b
    condition:
      if: "true"
      then:
        - id: b1
          script: { javascript: "return 1" }
          on_error: { goto: d }
        - id: b2
          script: { javascript: "return 1" }
  - id: c
    parallel:
      left:
        - id: l1
          script: { javascript: "return 1" }
      right:
        - id: r1
          script: { javascript: "return 1" }
        - id: r2
          script: { javascript: "return 1" }
  - id: d
    script: { javascript: "return 1" }
`,
    'graph.yaml',
  ),
);

describe('StepGraph', () => {
  it('walks lists in order and reports the end of each list with its container and branch', () => {
    expect(graph.first().id).toBe('a');
    expect(graph.next('a')).toMatchObject({ kind: 'step', step: { id: 'b' } });
    expect(graph.next('b1')).toMatchObject({ kind: 'step', step: { id: 'b2' } });
    expect(graph.next('b2')).toEqual({ kind: 'end-of-list', parentId: 'b', branch: 'then' });
    expect(graph.next('r2')).toEqual({ kind: 'end-of-list', parentId: 'c', branch: 'right' });
    expect(graph.next('d')).toEqual({ kind: 'end-of-list', parentId: null, branch: null });
  });

  it('finds branch heads and ancestors', () => {
    expect(graph.branchFirst('b', 'then')?.id).toBe('b1');
    expect(graph.branchFirst('b', 'else')).toBeUndefined();
    expect(graph.branchFirst('c', 'right')?.id).toBe('r1');
    expect(graph.ancestors('r2')).toEqual(['c']);
    expect(graph.ancestors('a')).toEqual([]);
  });

  it('lists the containers a goto leaves, and refuses one out of a parallel branch', () => {
    expect(graph.gotoExits('a', 'd')).toEqual([]);
    expect(graph.gotoExits('b1', 'd')).toEqual(['b']);
    expect(() => graph.gotoExits('r1', 'd')).toThrow(/parallel branch/);
  });
});
