import { describe, expect, it } from 'vitest';
import { outputKey } from '../../../src/core/tasks/result-custody.js';

describe('outputKey', () => {
  it("files an output under its tenant and the UTC day of its task's creation", () => {
    const task = { tenant: 'acme', id: 'vid_abc', createdAt: Date.parse('2026-12-01T23:59:59.999Z') };
    expect(outputKey(task, 0, 'video/mp4')).toBe('acme/2026-12-01/vid_abc-0.mp4');
    expect(outputKey({ ...task, createdAt: Date.parse('2026-12-02T00:00:00.000Z') }, 1, 'image/png')).toBe('acme/2026-12-02/vid_abc-1.png');
  });

  it('keeps every part a plain file name, whatever the tenant or id holds', () => {
    const key = outputKey({ tenant: '../other tenant', id: 'vid/../x', createdAt: 0 }, 0, 'video/mp4');
    expect(key).toBe('.._other_tenant/1970-01-01/vid_.._x-0.mp4');
    expect(key.split('/')).toHaveLength(3);
  });
});
