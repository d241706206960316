/**
 * The registry and the shape of a provider folder: every folder under src/providers/ is
 * registered, has the same file set, and its index hands out the provider alone; every
 * provider's shipped default prices are what the shipped config.yaml says, so a configuration
 * without a `pricing` block prices as the shipped one does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/config.js';
import { mergePricing } from '../../src/core/model/pricing.js';
import { PROVIDER_IDS, PROVIDERS } from '../../src/providers/registry.js';

const PROVIDERS_DIR = new URL('../../src/providers/', import.meta.url);
const FIXTURE_DIR = new URL('../fixtures/providers/', import.meta.url);

/**
 * The files of every provider folder, in the order they may import each other: a file imports
 * only files before it (the fixture adds its OpenAPI document beside them).
 */
const ROLES = ['api.generated', 'pricing', 'schemas', 'capabilities', 'errors', 'request', 'status', 'simulator', 'provider'];

function fileSet(id: string): string[] {
  return [...ROLES.map((role) => `${id}-${role}.ts`), 'index.ts'].sort();
}

/** The sibling files a provider file imports, by role (`index` for the index). */
function siblingImports(dir: URL, file: string, id: string): string[] {
  const source = readFileSync(new URL(file, dir), 'utf8');
  return [...source.matchAll(/from '\.\/([^']+)\.js'/g)].map(([, name]) => (name === 'index' ? 'index' : name!.replace(`${id}-`, '')));
}

function expectLayered(dir: URL, id: string): void {
  ROLES.forEach((role, position) => {
    for (const imported of siblingImports(dir, `${id}-${role}.ts`, id)) {
      expect(ROLES.indexOf(imported), `${id}-${role}.ts imports ${imported}`).toBeGreaterThanOrEqual(0);
      expect(ROLES.indexOf(imported), `${id}-${role}.ts imports ${imported}`).toBeLessThan(position);
    }
  });
  expect(siblingImports(dir, 'index.ts', id)).toEqual(['provider']);
}

function foldersIn(dir: URL): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

describe('the provider registry', () => {
  it('registers every provider folder, each id once', () => {
    expect([...PROVIDER_IDS].sort()).toEqual(foldersIn(PROVIDERS_DIR));
    expect(new Set(PROVIDER_IDS).size).toBe(PROVIDER_IDS.length);
  });

  it.each(PROVIDER_IDS)('%s: its folder has the same file set as every provider', (id) => {
    expect(readdirSync(new URL(`${id}/`, PROVIDERS_DIR)).sort()).toEqual(fileSet(id));
  });

  it.each(PROVIDER_IDS)('%s: each file imports only the files before it in the set, and the index only the provider', (id) => {
    expectLayered(new URL(`${id}/`, PROVIDERS_DIR), id);
  });

  it('the fixture fourth provider has that file set and layering too, beside its OpenAPI document', () => {
    for (const id of foldersIn(FIXTURE_DIR)) {
      expect(readdirSync(new URL(`${id}/`, FIXTURE_DIR)).sort()).toEqual([...fileSet(id), `${id}.yaml`].sort());
      expectLayered(new URL(`${id}/`, FIXTURE_DIR), id);
    }
  });

  it.each(PROVIDERS.map((provider) => [provider.id, provider] as const))(
    '%s: its index exports the provider and nothing else',
    async (id, provider) => {
      const index = (await import(new URL(`${id}/index.ts`, PROVIDERS_DIR).href)) as Record<string, unknown>;
      expect(Object.values(index)).toEqual([provider]);
    },
  );

  it.each(PROVIDERS.map((provider) => [provider.id, provider] as const))(
    '%s: the shipped config.yaml prices it as its shipped defaults do',
    (id, provider) => {
      const config = loadConfigFile(new URL('../../config.yaml', import.meta.url).pathname, {}, PROVIDER_IDS);
      expect(provider.defaultPricing).toBeDefined();
      expect(mergePricing(provider.defaultPricing, config.providers[id]?.pricing)).toEqual(mergePricing(provider.defaultPricing, undefined));
    },
  );
});
