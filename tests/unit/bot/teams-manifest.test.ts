import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandRegistry } from '../../../src/commands/registry.ts';

const DIR = path.resolve(process.cwd(), 'manifests/teams');

interface Manifest {
  manifestVersion: string;
  id: string;
  icons: { outline: string; color: string };
  bots: { botId: string; scopes: string[]; commandLists: { scopes: string[]; commands: { title: string; description: string }[] }[] }[];
}

function pngSize(file: string): { width: number; height: number; colorType: number } {
  const b = readFileSync(path.join(DIR, file));
  expect(b.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), colorType: b[25]! };
}

describe('manifests/teams/manifest.json', () => {
  const manifest = JSON.parse(readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as Manifest;

  it('declares a v1.17+ bot for personal chats, teams and group chats', () => {
    expect(Number(manifest.manifestVersion)).toBeGreaterThanOrEqual(1.17);
    expect(manifest.bots).toHaveLength(1);
    expect(manifest.bots[0]!.scopes.sort()).toEqual(['groupChat', 'personal', 'team']);
    expect(manifest.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(manifest.bots[0]!.botId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('lists only commands SENTreflex has, within Teams’ limits (10 per list, 32-character titles, 128-character descriptions)', () => {
    const registry = new CommandRegistry();
    for (const list of manifest.bots[0]!.commandLists) {
      expect(list.commands.length).toBeLessThanOrEqual(10);
      for (const c of list.commands) {
        const m = registry.match(c.title.split(' '));
        expect(m.kind === 'command' && m.command.name, c.title).toBe(c.title);
        expect(c.title.length).toBeLessThanOrEqual(32);
        expect(c.description.length).toBeLessThanOrEqual(128);
      }
    }
  });

  it('ships the two icons Teams asks for: 192×192 colour, 32×32 outline with transparency', () => {
    expect(pngSize(manifest.icons.color)).toMatchObject({ width: 192, height: 192 });
    expect(pngSize(manifest.icons.outline)).toEqual({ width: 32, height: 32, colorType: 6 });
  });
});
