import { ReflexError } from '../../errors.ts';
import type { Playbook, Step } from '../manifest/types.ts';

/**
 * Where each step of a playbook sits, and what comes after it. Pure: the runs system asks it
 * "step X finished, what next?" and persists the answer, so the flow is decided from the manifest
 * and the recorded step statuses alone, never from what a worker happened to remember.
 *
 * A step lives in a list: the playbook's `steps`, a condition's `then`/`else`, or a branch of a
 * parallel step. When a list runs out, its container (the condition or parallel step) is done
 * with that branch; when the top-level list runs out, the run is done.
 *
 * @example
 * const graph = new StepGraph(playbook);
 * graph.next('enrich_ip'); // { kind: 'step', step: <hostile_source> }
 */
export interface StepLocation {
  step: Step;
  /** The condition or parallel step holding the list, or null for the top level. */
  parentId: string | null;
  /** `then` / `else`, or the parallel branch name; null at the top level. */
  branch: string | null;
  list: readonly Step[];
  index: number;
}

export type NextMove = { kind: 'step'; step: Step } | { kind: 'end-of-list'; parentId: string | null; branch: string | null };

export class StepGraph {
  private readonly byId = new Map<string, StepLocation>();

  constructor(readonly playbook: Playbook) {
    this.index(playbook.steps, null, null);
  }

  private index(list: readonly Step[], parentId: string | null, branch: string | null): void {
    list.forEach((step, index) => {
      this.byId.set(step.id, { step, parentId, branch, list, index });
      if (step.kind === 'condition') {
        this.index(step.then, step.id, 'then');
        this.index(step.else, step.id, 'else');
      } else if (step.kind === 'parallel') {
        for (const b of step.branches) this.index(b.steps, step.id, b.name);
      }
    });
  }

  first(): Step {
    const s = this.playbook.steps[0];
    if (!s) throw new ReflexError('internal', `playbook ${this.playbook.id} has no steps`);
    return s;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  locate(id: string): StepLocation {
    const loc = this.byId.get(id);
    if (!loc) throw new ReflexError('internal', `step ${id} is not in playbook ${this.playbook.id}@${this.playbook.version}`);
    return loc;
  }

  step(id: string): Step {
    return this.locate(id).step;
  }

  /** The next step of the same list, or the end of that list. */
  next(id: string): NextMove {
    const loc = this.locate(id);
    const after = loc.list[loc.index + 1];
    return after ? { kind: 'step', step: after } : { kind: 'end-of-list', parentId: loc.parentId, branch: loc.branch };
  }

  /** The first step of a branch of a container, or undefined when that branch is empty. */
  branchFirst(containerId: string, branch: string): Step | undefined {
    const c = this.step(containerId);
    if (c.kind === 'condition') return (branch === 'then' ? c.then : c.else)[0];
    if (c.kind === 'parallel') return c.branches.find((b) => b.name === branch)?.steps[0];
    throw new ReflexError('internal', `step ${containerId} is not a container`);
  }

  /** Containers enclosing a step, innermost first. */
  ancestors(id: string): string[] {
    const out: string[] = [];
    let parent = this.locate(id).parentId;
    while (parent !== null) {
      out.push(parent);
      parent = this.locate(parent).parentId;
    }
    return out;
  }

  /**
   * The containers a goto from `fromId` to `targetId` leaves, innermost first. The validator
   * guarantees the target is later in the same list or in an enclosing one, never out of a
   * parallel branch; this re-checks, because a definition stored with a run outlives validators.
   */
  gotoExits(fromId: string, targetId: string): string[] {
    const target = this.locate(targetId);
    const exits: string[] = [];
    let parent = this.locate(fromId).parentId;
    while (parent !== target.parentId) {
      if (parent === null) throw new ReflexError('internal', `goto ${fromId} -> ${targetId} does not reach an enclosing list`);
      if (this.step(parent).kind === 'parallel') throw new ReflexError('internal', `goto ${fromId} -> ${targetId} leaves a parallel branch`);
      exits.push(parent);
      parent = this.locate(parent).parentId;
    }
    return exits;
  }

  /** Every step, in document order (containers before their children). */
  all(): Step[] {
    return [...this.byId.values()].map((l) => l.step);
  }
}
