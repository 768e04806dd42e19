import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The shared real-world payloads (../shared/fixtures), used as they are. */
export const FIXTURES_DIR = path.resolve(process.cwd(), '../shared/fixtures');

export function fixtureText(relative: string): string {
  return readFileSync(path.join(FIXTURES_DIR, relative), 'utf8');
}

export function fixtureJson<T = Record<string, unknown>>(relative: string): T {
  return JSON.parse(fixtureText(relative)) as T;
}

export function fixtureLines(relative: string): Record<string, unknown>[] {
  return fixtureText(relative)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
