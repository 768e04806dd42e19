/**
 * Maps a path into the parsed YAML (`['steps', 2, 'with', 'ip']`) back to the line and column an
 * author sees in an editor. When the path ends at a key that is missing, the nearest enclosing
 * node is reported: "steps[2].with: is required" points at the step that lacks it.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter } from 'yaml';

export type ManifestPath = readonly (string | number)[];

export interface LinePosition {
  line: number;
  column: number;
}

function keyName(key: unknown): unknown {
  return isScalar(key) ? key.value : key;
}

/** Start offset of a YAML node, when it has a place in the source. */
function startOf(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null) return undefined;
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined;
}

/** Offset of the node at `path` (or of its key when `atKey`), falling back to the deepest ancestor found. */
function offsetOf(doc: Document, path: ManifestPath, atKey: boolean): number {
  let node: unknown = doc.contents;
  let offset = startOf(doc.contents) ?? 0;
  for (const [i, segment] of path.entries()) {
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(keyName(p.key)) === String(segment));
      if (!pair) break;
      const keyStart = startOf(pair.key);
      const valueStart = startOf(pair.value);
      if ((last && atKey) || valueStart === undefined) {
        if (keyStart !== undefined) offset = keyStart;
        break;
      }
      offset = valueStart;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      const itemStart = startOf(item);
      if (itemStart === undefined) break;
      offset = itemStart;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** Line and column (1-based) of the node at `path` in a document parsed with `lineCounter`. */
export function locate(doc: Document, lineCounter: LineCounter, path: ManifestPath, atKey = false): LinePosition {
  const { line, col } = lineCounter.linePos(offsetOf(doc, path, atKey));
  return { line, column: col };
}

/** `steps[2].with.ip`: the JavaScript-ish spelling authors know from error messages elsewhere. */
export function formatPath(path: ManifestPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}
